/* Per-thread scratch memory. Reusing one block per thread keeps its pages resident between
 * calls; a fresh multi-megabyte allocation per call would fault in (and zero) every page again.
 * Threads never share a block, so concurrent calls stay safe. */
#include <stdlib.h>

#include "gru_kernels.h"

#if defined(_WIN32)
/* No per-thread cache on Windows: one allocation per call, freed at the next call's start. */
static __declspec(thread) void *block;

void *cgru_workspace(size_t bytes)
{
    free(block);
    block = malloc(bytes ? bytes : 1);
    return block;
}
#else
#include <pthread.h>

typedef struct {
    void *ptr;
    size_t size;
} workspace;

static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void release(void *p)
{
    workspace *w = p;
    free(w->ptr);
    free(w);
}

static void make_key(void) { pthread_key_create(&key, release); }

void *cgru_workspace(size_t bytes)
{
    pthread_once(&key_once, make_key);
    workspace *w = pthread_getspecific(key);
    if (!w) {
        w = calloc(1, sizeof *w);
        if (!w || pthread_setspecific(key, w) != 0) {
            free(w);
            return NULL;
        }
    }
    if (bytes > w->size) {
        free(w->ptr);
        w->ptr = malloc(bytes);
        w->size = w->ptr ? bytes : 0;
    }
    return w->ptr;
}
#endif
