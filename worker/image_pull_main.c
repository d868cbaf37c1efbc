/* image_pull_main.c: kiln-image-pull, which kiln-image runs when an image
 * is not in the worker's store (imagepull.h). Progress goes to stdout, the
 * error, if any, as the last line on stderr. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/imagepull.h"

int main(int argc, char **argv)
{
    kiln_image_opts_t o = {0};
    static const struct option longs[] = {
        {"store", required_argument, 0, 's'},    {"auth", required_argument, 0, 'a'},
        {"insecure", required_argument, 0, 'i'}, {"mirror", required_argument, 0, 'm'},
        {"max-mb", required_argument, 0, 'q'},   {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 's': o.store = optarg; break;
        case 'a': o.registry.auth_file = optarg; break;
        case 'i': o.registry.insecure = optarg; break;
        case 'm': o.registry.mirror = optarg; break;
        case 'q': o.max_bytes = (uint64_t)strtoull(optarg, NULL, 10) << 20; break;
        default:
            fprintf(stderr, "usage: kiln-image-pull --store DIR [--auth FILE] [--insecure "
                            "HOST,...] [--mirror [HOST=]URL,...] [--max-mb N] IMAGE\n");
            return 2;
        }
    }
    if (!o.store || optind + 1 != argc) {
        fprintf(stderr, "kiln-image-pull: --store and one IMAGE are required\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    char why[1200];
    if (kiln_image_pull(&o, argv[optind], stdout, why, sizeof why) != 0) {
        fprintf(stderr, "%s\n", why);
        return 1;
    }
    return 0;
}
