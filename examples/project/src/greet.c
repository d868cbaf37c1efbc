/* greet.c: the example project's program: prints a greeting, and the
 * version it was built as. */
#include <stdio.h>

#ifndef VERSION
#define VERSION "unknown"
#endif

int main(int argc, char **argv)
{
    printf("hello, %s (greet %s)\n", argc > 1 ? argv[1] : "world", VERSION);
    return 0;
}
