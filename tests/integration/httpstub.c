/* httpstub.c: a test stand-in for a cloud's instance metadata endpoint.
 * Answers every request on 127.0.0.1:PORT with 404 until FLAG_FILE exists,
 * then with 200 and a small JSON body, as EC2's spot/instance-action does
 * once an interruption is scheduled. Runs until killed.
 *
 * usage: kiln-httpstub PORT FLAG_FILE
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: kiln-httpstub PORT FLAG_FILE\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0) {
        perror("httpstub");
        return 2;
    }
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c < 0)
            continue;
        char req[4096];
        ssize_t n = read(c, req, sizeof req - 1); /* one small request */
        (void)n;
        struct stat st;
        static const char body[] = "{\"action\": \"terminate\", \"time\": \"2026-11-26T00:00:00Z\"}";
        char resp[512];
        if (stat(argv[2], &st) == 0)
            snprintf(resp, sizeof resp,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     strlen(body), body);
        else
            snprintf(resp, sizeof resp,
                     "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        ssize_t w = write(c, resp, strlen(resp));
        (void)w;
        close(c);
    }
}
