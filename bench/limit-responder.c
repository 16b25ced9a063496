/*
 * The limit: the least a FastCGI responder on libfcgi can do per request, in libfcgi's usual way (a
 * thread per connection, FCGX_Accept_r in a loop). It answers each request with bytes read from a
 * file at its start: the counter's own page for "/" and its stats JSON for "/api/...", so the
 * benchmark compares the same bytes on the wire. WORKERS processes of THREADS threads each, like the
 * counter's defaults.
 *
 *   cc -O2 -o limit-responder limit-responder.c -lfcgi -lpthread
 *   limit-responder SOCKET WORKERS THREADS PAGE_ANSWER STATS_ANSWER
 *
 * Each ANSWER file holds what the responder writes: CGI headers, an empty line and the body.
 * Stop it by signalling its process group.
 */
#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct answer {
    char *bytes;
    int length;
};
static struct answer page, stats;

static int read_answer(const char *path, struct answer *answer) {
    FILE *file = fopen(path, "rb");
    if (!file) return -1;
    fseek(file, 0, SEEK_END);
    answer->length = (int)ftell(file);
    rewind(file);
    answer->bytes = malloc(answer->length);
    int read = (int)fread(answer->bytes, 1, answer->length, file);
    fclose(file);
    return read == answer->length ? 0 : -1;
}

static int listening;
static pid_t children[256];
static int child_count;

/* SIGTERM to the parent stops the workers too. */
static void stop(int signal_number) {
    for (int i = 0; i < child_count; i++) kill(children[i], signal_number);
    _exit(0);
}

static void *serve(void *unused) {
    (void)unused;
    FCGX_Request request;
    FCGX_InitRequest(&request, listening, 0);
    while (FCGX_Accept_r(&request) == 0) {
        const char *uri = FCGX_GetParam("REQUEST_URI", request.envp);
        const struct answer *answer = uri && strncmp(uri, "/api/", 5) == 0 ? &stats : &page;
        FCGX_PutStr(answer->bytes, answer->length, request.out);
        FCGX_Finish_r(&request);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s SOCKET WORKERS THREADS PAGE_ANSWER STATS_ANSWER\n", argv[0]);
        return 2;
    }
    if (read_answer(argv[4], &page) != 0 || read_answer(argv[5], &stats) != 0) {
        perror("reading the answers");
        return 1;
    }
    int workers = atoi(argv[2]);
    int threads = atoi(argv[3]);
    if (workers < 1 || workers > 256 || threads < 1) {
        fprintf(stderr, "WORKERS must be 1 to 256, THREADS at least 1\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (FCGX_Init() != 0) return 1;
    unlink(argv[1]);
    listening = FCGX_OpenSocket(argv[1], 1024);
    if (listening < 0) {
        perror("FCGX_OpenSocket");
        return 1;
    }
    chmod(argv[1], 0666);
    /* Fork before any thread exists. */
    for (int worker = 0; worker < workers; worker++) {
        pid_t child = fork();
        if (child > 0) children[child_count++] = child;
        if (child == 0) {
            /* FCGX_Init's SIGTERM handler only sets a flag: let SIGTERM end the worker. */
            signal(SIGTERM, SIG_DFL);
            pthread_t ids[threads];
            for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, serve, NULL);
            for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
            _exit(0);
        }
    }
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    while (wait(NULL) > 0) {}
    return 0;
}
