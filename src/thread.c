#include "thread.h"

#include <pthread.h>
#include <signal.h>

int mvr_thread_detach(void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_t thread;
    sigset_t all, old;
    int rc = pthread_attr_init(&attr);

    if (rc != 0)
        return rc;
    sigfillset(&all);
    rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* A new thread inherits the mask of the one that creates it. */
    if (rc == 0)
        rc = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (rc == 0) {
        rc = pthread_create(&thread, &attr, fn, arg);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    pthread_attr_destroy(&attr);
    return rc;
}
