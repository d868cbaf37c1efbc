/* tcptap.c: a test tool that relays TCP connections on 127.0.0.1 and
 * records every byte that passes, in both directions, to a capture file.
 * The integration tests put it between workers and the coordinator to show
 * that step output never crosses the wire in plaintext.
 *
 * usage: kiln-tcptap LISTEN_PORT TARGET_PORT CAPTURE_FILE
 * Runs until killed. At most KILN_TAP_PAIRS connections at once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define KILN_TAP_PAIRS 64

static int s_listen(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0) {
        perror("tcptap: listen");
        exit(2);
    }
    return fd;
}

static int s_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: kiln-tcptap LISTEN_PORT TARGET_PORT CAPTURE_FILE\n");
        return 2;
    }
    int lfd = s_listen(atoi(argv[1])), target = atoi(argv[2]);
    int cap = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    int pairs[KILN_TAP_PAIRS][2];
    int n = 0;
    char buf[65536];
    if (cap < 0) {
        perror("tcptap: capture file");
        return 2;
    }
    for (;;) {
        struct pollfd pfd[1 + 2 * KILN_TAP_PAIRS];
        pfd[0] = (struct pollfd){lfd, POLLIN, 0};
        for (int i = 0; i < n; i++) {
            pfd[1 + 2 * i] = (struct pollfd){pairs[i][0], POLLIN, 0};
            pfd[2 + 2 * i] = (struct pollfd){pairs[i][1], POLLIN, 0};
        }
        if (poll(pfd, (nfds_t)(1 + 2 * n), -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if ((pfd[0].revents & POLLIN) && n < KILN_TAP_PAIRS) {
            int c = accept(lfd, NULL, NULL);
            int t = c >= 0 ? s_connect(target) : -1;
            if (c >= 0 && t >= 0) {
                pairs[n][0] = c;
                pairs[n][1] = t;
                n++;
            } else if (c >= 0) {
                close(c);
            }
            continue;
        }
        for (int i = 0; i < n; i++) {
            for (int side = 0; side < 2; side++) {
                if (!(pfd[1 + 2 * i + side].revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                ssize_t got = read(pairs[i][side], buf, sizeof buf);
                if (got <= 0) {
                    close(pairs[i][0]);
                    close(pairs[i][1]);
                    pairs[i][0] = pairs[n - 1][0];
                    pairs[i][1] = pairs[n - 1][1];
                    n--;
                    goto next_round;
                }
                if (write(cap, buf, (size_t)got) != got)
                    return 1;
                if (write(pairs[i][1 - side], buf, (size_t)got) != got) {
                    close(pairs[i][0]);
                    close(pairs[i][1]);
                    pairs[i][0] = pairs[n - 1][0];
                    pairs[i][1] = pairs[n - 1][1];
                    n--;
                    goto next_round;
                }
            }
        }
    next_round:;
    }
}
