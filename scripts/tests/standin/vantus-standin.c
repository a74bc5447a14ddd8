/*
 * A stand-in for the `vantus` binary, used ONLY to test the container plumbing
 * (scripts/test-container --standin) on machines where the real binary is not built yet.
 * It honours the same contract the real binary promises for containers:
 *   serve        listen on VANTUS_LISTEN, answer /healthz and /readyz, JSON logs on stdout,
 *                create a file in VANTUS_DATA_DIR, exit 0 on SIGTERM;
 *                refuse to start in production without a >= 32-byte VANTUS_SECRET_KEY.
 *   healthcheck  GET /readyz on the port from VANTUS_LISTEN, exit 0 when it answers 200.
 *   version      print a version line.
 * Build: cc -static -O2 -o vantus vantus-standin.c
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static int listen_port(void) {
    const char *l = getenv("VANTUS_LISTEN");
    const char *colon = l ? strrchr(l, ':') : NULL;
    return colon ? atoi(colon + 1) : 8080;
}

static void logj(const char *level, const char *msg) {
    printf("{\"level\":\"%s\",\"target\":\"vantus_standin\",\"message\":\"%s\"}\n", level, msg);
    fflush(stdout);
}

static int healthcheck(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(listen_port())};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return 1;
    const char *req = "GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if (write(fd, req, strlen(req)) < 0) return 1;
    char buf[64] = {0};
    if (read(fd, buf, sizeof buf - 1) <= 0) return 1;
    close(fd);
    return strncmp(buf, "HTTP/1.1 200", 12) == 0 ? 0 : 1;
}

static int serve(void) {
    const char *env = getenv("VANTUS_ENV");
    const char *key = getenv("VANTUS_SECRET_KEY");
    if (env && strcmp(env, "production") == 0 && (!key || strlen(key) < 64)) {
        logj("error", "VANTUS_SECRET_KEY is missing or shorter than 32 bytes (64 hex chars)");
        return 2;
    }
    const char *dir = getenv("VANTUS_DATA_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/standin.state", dir ? dir : ".");
    int sf = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    if (sf < 0) { logj("error", "data dir is not writable"); return 3; }
    close(sf);

    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(listen_port())};
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0) { logj("error", "bind failed"); return 4; }
    logj("info", "listening");
    while (!stop) {
        int c = accept(s, NULL, NULL);
        if (c < 0) { if (errno == EINTR) continue; break; }
        char buf[1024] = {0};
        ssize_t n = read(c, buf, sizeof buf - 1);
        const char *resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        if (n > 0 && strncmp(buf, "GET /healthz", 12) == 0)
            resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
        else if (n > 0 && strncmp(buf, "GET /readyz", 11) == 0)
            resp = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 18\r\nConnection: close\r\n\r\n{\"status\":\"ready\"}";
        if (write(c, resp, strlen(resp)) < 0) logj("warn", "write failed");
        close(c);
    }
    logj("info", "SIGTERM received, drained, exiting");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "serve") == 0) return serve();
    if (strcmp(argv[1], "healthcheck") == 0) return healthcheck();
    if (strcmp(argv[1], "version") == 0) { puts("{\"version\":\"0.0.0-standin\"}"); return 0; }
    fprintf(stderr, "stand-in: unsupported subcommand %s\n", argv[1]);
    return 64;
}
