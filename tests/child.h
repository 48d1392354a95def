/*
 * child.h — for the suites that run a built program as a child process
 * (test_cli, test_examples): start it with its output on pipes, collect
 * stdout, stderr and the exit status, and check how it ended.
 */
#ifndef LOOM_TEST_CHILD_H
#define LOOM_TEST_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct tc_result {
    int status;    /* the exit status, or 128 + the signal that ended it */
    bool signaled; /* killed by a signal (a crash, unless the test sent it) */
    char *out, *err;
    size_t nout, nerr;
} tc_result;

void tc_result_free(tc_result *r);
/* Appends k bytes of data to the terminated buffer *buf of length *n. */
void tc_append(char **buf, size_t *n, const char *data, size_t k);

/* Starts bin with args (NULL-terminated; bin is argv[0]) with stdout and
 * stderr on pipes. In the child, env's "NAME=value" strings (NULL or
 * NULL-terminated) are set first and, with dir, the working directory
 * changed. */
void tc_spawn(const char *bin, const char *const *args, const char *const *env, const char *dir, pid_t *pid,
              int *out_fd, int *err_fd);
/* Reads both pipes to their end and reaps the child. */
void tc_finish(pid_t pid, int out_fd, int err_fd, tc_result *r);
/* tc_spawn then tc_finish. */
tc_result tc_run(const char *bin, const char *const *args, const char *const *env, const char *dir);
/* Fails the test unless the child ended by itself with this status (the
 * message shows its output). */
void tc_expect_status(const tc_result *r, int status, const char *what);

#endif
