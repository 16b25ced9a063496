/*
 * The limit: the least a FastCGI responder on libfcgi can do per request. It answers every request
 * with the same fixed JSON body, in WORKERS processes of THREADS threads each, like the counter's
 * defaults, so the benchmark can say how close the counter comes to what libfcgi itself allows.
 *
 *   cc -O2 -o limit-responder limit-responder.c -lfcgi -lpthread
 *   limit-responder SOCKET WORKERS THREADS
 *
 * Stop it by signalling its process group.
 */
#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The same shape and about the same size as the counter's stats answer. */
static const char answer[] =
    "Status: 200 OK\r\n"
    "Content-Type: application/json\r\n"
    "Cache-Control: max-age=2\r\n"
    "Content-Length: 100\r\n"
    "\r\n"
    "{\"total_visitors\": 1000, \"countries\": {\"US\": 100, \"GB\": 50}, \"last_updated\": \"2024-03-20T12:00:00Z\"}";

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
        FCGX_PutStr(answer, (int)sizeof answer - 1, request.out);
        FCGX_Finish_r(&request);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s SOCKET WORKERS THREADS\n", argv[0]);
        return 2;
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
