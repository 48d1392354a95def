/*
 * child.c — running a built program as a child process (child.h).
 */
#define _XOPEN_SOURCE 700

#include "child.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

void tc_result_free(tc_result *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

void tc_append(char **buf, size_t *n, const char *data, size_t k)
{
    *buf = realloc(*buf, *n + k + 1);
    assert_non_null(*buf);
    memcpy(*buf + *n, data, k);
    *n += k;
    (*buf)[*n] = 0;
}

void tc_spawn(const char *bin, const char *const *args, const char *const *env, const char *dir, pid_t *pid,
              int *out_fd, int *err_fd)
{
    int po[2], pe[2];
    assert_int_equal(pipe(po), 0);
    assert_int_equal(pipe(pe), 0);
    *pid = fork();
    assert_true(*pid >= 0);
    if (*pid == 0) {
        const char *argv[64];
        int n = 0;
        argv[n++] = bin;
        for (; args[n - 1] && n < 63; n++)
            argv[n] = args[n - 1];
        argv[n] = NULL;
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        if (dir && chdir(dir) != 0)
            _exit(126);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    *out_fd = po[0];
    *err_fd = pe[0];
}

void tc_finish(pid_t pid, int out_fd, int err_fd, tc_result *r)
{
    memset(r, 0, sizeof *r);
    tc_append(&r->out, &r->nout, "", 0);
    tc_append(&r->err, &r->nerr, "", 0);
    struct pollfd fds[2] = { { out_fd, POLLIN, 0 }, { err_fd, POLLIN, 0 } };
    for (int open_fds = 2; open_fds > 0;) {
        if (poll(fds, 2, -1) < 0) {
            assert_int_equal(errno, EINTR);
            continue;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[4096];
            ssize_t k = read(fds[i].fd, buf, sizeof buf);
            if (k > 0) {
                if (i == 0)
                    tc_append(&r->out, &r->nout, buf, (size_t)k);
                else
                    tc_append(&r->err, &r->nerr, buf, (size_t)k);
            } else if (k == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    r->signaled = WIFSIGNALED(st);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

tc_result tc_run(const char *bin, const char *const *args, const char *const *env, const char *dir)
{
    pid_t pid;
    int o, e;
    tc_spawn(bin, args, env, dir, &pid, &o, &e);
    tc_result r;
    tc_finish(pid, o, e, &r);
    return r;
}

void tc_expect_status(const tc_result *r, int status, const char *what)
{
    if (r->signaled)
        fail_msg("%s: killed by signal %d (a crash)\nstderr: %s", what, r->status - 128, r->err);
    if (r->status != status)
        fail_msg("%s: exit status %d, expected %d\nstdout: %.3000s\nstderr: %.2000s", what, r->status, status, r->out,
                 r->err);
}
