/* cri-oci: the executor's command line, with start, kill, delete and exec (exec.c) done
 * without Python.
 *
 * Why: those commands do a few system calls each, but a Python interpreter costs 7-8 ms to
 * start: two thirds of a `cri-oci start` in Python, and twice a whole `runc start`. This front
 * end does them itself in the common case and hands every other case, unchanged, to the Python
 * CLI (cri/oci/cli.py): other commands, other global flags (--debug...), and any case that is not
 * plain: a container whose record has no `state.brief` (it has hooks to run or a rootfs bind to
 * undo), a paused one, a stopped one (an error to report), an unknown signal, leftover processes,
 * a cgroup that will not go. Whatever it has done before handing over is a step the Python
 * command would have taken too, so handing over at any point is safe.
 *
 * It never reports an error of its own but one: a start that times out. So the messages, and the
 * --log lines containerd reads, are the Python CLI's.
 *
 * state.brief (written by cri/oci/statefile.py with state.json, one "key value" a line):
 *     pid 1234
 *     pid_start 5678          (field 22 of /proc/PID/stat: a reused pid is not ours)
 *     cgroup_version 1
 *     freezer DIR             (optional: v1 freezer dir, or the v2 dir)
 *     cgroup DIR              (each of the container's cgroup dirs, one line each)
 *
 * Handing over: exec PYTHON -SE <package>/cri/oci/launcher.py ARGS, PYTHON being the interpreter
 * that built this binary (CRI_OCI_PYTHON), else python3 on PATH. The package is found from this
 * binary's own path (<package>/cri/oci/front/cri-oci), so the binary may be symlinked anywhere.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "front.h"

#ifndef CRI_OCI_PYTHON
#define CRI_OCI_PYTHON "python3"
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#define DEFAULT_ROOT "/run/cri/oci"
#define START_TIMEOUT_MS 30000
#define DEATH_TIMEOUT_MS 10000
#define RMDIR_TIMEOUT_MS 5000

static char **saved_argv;

/* Exec the Python CLI with our own arguments. */
static void hand_over(void) {
    char exe[PATH_MAX], launcher[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        perror("cri-oci: /proc/self/exe");
        exit(1);
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/'); /* .../cri/oci/front/cri-oci -> .../cri/oci */
    if (slash) *slash = '\0';
    slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    snprintf(launcher, sizeof launcher, "%s/launcher.py", exe);

    int argc = 0;
    while (saved_argv[argc]) argc++;
    char **args = calloc((size_t)argc + 4, sizeof *args);
    if (!args) exit(1);
    args[0] = CRI_OCI_PYTHON;
    args[1] = "-SE";
    args[2] = launcher;
    for (int i = 1; i < argc; i++) args[i + 2] = saved_argv[i];
    if (strchr(CRI_OCI_PYTHON, '/') && access(CRI_OCI_PYTHON, X_OK) == 0)
        execv(CRI_OCI_PYTHON, args);
    args[0] = "python3";
    execvp("python3", args);
    perror("cri-oci: cannot run python3");
    exit(1);
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* The whole of a small file, NUL-terminated; -1 if it cannot be read. */
ssize_t read_file(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, size - 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
        if (len == size - 1) break;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* Container ids as runc (and statefile.validate_id) take them: no path tricks. */
static int valid_id(const char *id) {
    size_t len = strlen(id);
    if (len == 0 || len > 1024 || strcmp(id, ".") == 0 || strcmp(id, "..") == 0) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || !strchr("_.+-", c))) return 0;
    }
    return 1;
}

/* Load <root>/<id>/state.brief; 0 if there is none (or it is not what we expect). */
int load_brief(const char *root, const char *id, struct brief *b) {
    if (!valid_id(id)) return 0;
    if (snprintf(b->dir, sizeof b->dir, "%s/%s", root, id) >= (int)sizeof b->dir) return 0;
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/state.brief", b->dir);
    ssize_t len = read_file(path, b->text, sizeof b->text);
    if (len <= 0 || (size_t)len == sizeof b->text - 1) return 0;
    b->pid = 0;
    b->pid_start = 0;
    b->cgroup_version = 0;
    b->freezer[0] = '\0';
    b->ncgroups = 0;
    for (char *line = b->text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        char *value = strchr(line, ' ');
        if (!value) return 0;
        *value++ = '\0';
        if (strcmp(line, "pid") == 0) {
            b->pid = strtol(value, NULL, 10);
        } else if (strcmp(line, "pid_start") == 0) {
            b->pid_start = strtoull(value, NULL, 10);
        } else if (strcmp(line, "cgroup_version") == 0) {
            b->cgroup_version = atoi(value);
        } else if (strcmp(line, "freezer") == 0) {
            if (strlen(value) >= sizeof b->freezer) return 0;
            strcpy(b->freezer, value);
        } else if (strcmp(line, "cgroup") == 0) {
            if (b->ncgroups == MAX_CGROUPS) return 0;
            b->cgroups[b->ncgroups++] = value;
        } else {
            return 0; /* a newer format: let Python read state.json */
        }
    }
    return b->pid > 0 && b->pid_start > 0 && (b->cgroup_version == 1 || b->cgroup_version == 2);
}

/* The init is alive, ours (same start time) and not a zombie: statefile.init_alive. */
int init_alive(const struct brief *b) {
    char path[64], stat[4096];
    snprintf(path, sizeof path, "/proc/%ld/stat", b->pid);
    if (read_file(path, stat, sizeof stat) <= 0) return 0;
    char *p = strrchr(stat, ')'); /* comm may hold spaces and parens */
    if (!p || p[1] != ' ') return 0;
    p += 2;
    char state = *p;
    for (int field = 3; field < 22 && p; field++) { /* to field 22, starttime */
        p = strchr(p, ' ');
        if (p) p++;
    }
    if (!p) return 0;
    return strtoull(p, NULL, 10) == b->pid_start && state != 'Z' && state != 'X';
}

/* Anything but plainly thawed (frozen, freezing, unreadable) is for Python to judge. */
int maybe_frozen(const struct brief *b) {
    if (!b->freezer[0]) return 0;
    char path[PATH_MAX + 32], value[64];
    if (b->cgroup_version == 1) {
        snprintf(path, sizeof path, "%s/freezer.state", b->freezer);
        if (read_file(path, value, sizeof value) < 0) return errno != ENOENT;
        return strncmp(value, "THAWED", 6) != 0;
    }
    snprintf(path, sizeof path, "%s/cgroup.freeze", b->freezer);
    if (read_file(path, value, sizeof value) < 0) return errno != ENOENT;
    return value[0] != '0';
}

static int fifo_exists(const struct brief *b) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/exec.fifo", b->dir);
    return access(path, F_OK) == 0;
}

/* Signal the init through a pidfd, after checking it is still ours (kill.signal_init). */
static int signal_init(const struct brief *b, int sig) {
    int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)b->pid, 0);
    if (pidfd < 0) return 0;
    int sent = init_alive(b) && syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) == 0;
    close(pidfd);
    return sent;
}

static void log_error(const char *log_path, const char *log_format, const char *msg) {
    fprintf(stderr, "cri-oci: %s\n", msg);
    if (!log_path) return;
    FILE *f = fopen(log_path, "ae");
    if (!f) return;
    char stamp[32];
    time_t t = time(NULL);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    if (log_format && strcmp(log_format, "json") == 0)
        fprintf(f, "{\"level\": \"error\", \"msg\": \"%s\", \"time\": \"%s\"}\n", msg, stamp);
    else
        fprintf(f, "time=\"%s\" level=error msg=\"%s\"\n", stamp, msg);
    fclose(f);
}

/* start: open exec.fifo, read the init's byte, wait for EOF (its execve): start.py. */
static enum outcome do_start(const struct globals *g, const char *id) {
    struct brief b;
    if (!load_brief(g->root, id, &b) || !init_alive(&b) || maybe_frozen(&b)) return HAND_OVER;
    char fifo[PATH_MAX + 16];
    snprintf(fifo, sizeof fifo, "%s/exec.fifo", b.dir);
    int fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return HAND_OVER;
    long long deadline = now_ms() + START_TIMEOUT_MS;
    int released = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int ready = poll(&p, 1, 100);
        if (ready < 0 && errno != EINTR) break;
        if (ready > 0) {
            char byte;
            ssize_t r = read(fd, &byte, 1);
            if (r > 0) {
                released = 1; /* the init got going: now wait for its execve (EOF) */
                continue;
            }
            if (r == 0 && released) break;
        }
        if (!init_alive(&b)) {
            if (released) break; /* died at or after its execve: stopped, not our error */
            close(fd);
            return HAND_OVER; /* exited before start: Python says so */
        }
        if (now_ms() > deadline) {
            close(fd);
            char msg[1200];
            snprintf(msg, sizeof msg, "timed out starting container '%s'", id);
            log_error(g->log, g->log_format, msg);
            exit(1);
        }
        if (ready > 0) sleep_ms(10); /* EOF before any writer: poll again, without spinning */
    }
    close(fd);
    unlink(fifo);
    return DONE;
}

static const struct {
    const char *name;
    int number;
} SIGNALS[] = {
    {"HUP", SIGHUP},     {"INT", SIGINT},       {"QUIT", SIGQUIT},     {"ILL", SIGILL},
    {"TRAP", SIGTRAP},   {"ABRT", SIGABRT},     {"IOT", SIGIOT},       {"BUS", SIGBUS},
    {"FPE", SIGFPE},     {"KILL", SIGKILL},     {"USR1", SIGUSR1},     {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2},   {"PIPE", SIGPIPE},     {"ALRM", SIGALRM},     {"TERM", SIGTERM},
    {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD},   {"CONT", SIGCONT},     {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU},     {"URG", SIGURG},
    {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ},     {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
    {"WINCH", SIGWINCH}, {"IO", SIGIO},         {"POLL", SIGPOLL},     {"PWR", SIGPWR},
    {"SYS", SIGSYS},
};

/* A signal by number, NAME or SIGNAME (real-time ones are left to Python); 0 if unknown. */
static int parse_signal(const char *text) {
    if (text[0] >= '0' && text[0] <= '9') {
        char *end;
        long n = strtol(text, &end, 10);
        return (*end == '\0' && n > 0 && n < 32) ? (int)n : 0;
    }
    if (strncmp(text, "SIG", 3) == 0) text += 3;
    for (size_t i = 0; i < sizeof SIGNALS / sizeof SIGNALS[0]; i++)
        if (strcmp(text, SIGNALS[i].name) == 0) return SIGNALS[i].number;
    return 0;
}

/* kill ID [SIGNAL]: to the init only (kill.py without --all). */
static enum outcome do_kill(const struct globals *g, const char *id, const char *signal_text) {
    int sig = parse_signal(signal_text);
    struct brief b;
    if (!sig || !load_brief(g->root, id, &b) || maybe_frozen(&b)) return HAND_OVER;
    return signal_init(&b, sig) ? DONE : HAND_OVER;
}

/* Some process is still in one of the container's cgroups (or we cannot tell). */
static int cgroups_busy(const struct brief *b) {
    for (int i = 0; i < b->ncgroups; i++) {
        char path[PATH_MAX + 16], procs[64];
        snprintf(path, sizeof path, "%s/cgroup.procs", b->cgroups[i]);
        if (read_file(path, procs, sizeof procs) < 0) {
            if (errno == ENOENT) continue;
            return 1;
        }
        if (procs[0]) return 1;
    }
    return 0;
}

/* rmdir, retrying EBUSY while exiting tasks leave it (cgroups/fs.rmdir). */
static int remove_cgroup(const char *dir) {
    long long deadline = now_ms() + RMDIR_TIMEOUT_MS;
    int delay = 5;
    while (rmdir(dir) != 0) {
        if (errno == ENOENT) return 1;
        if (errno != EBUSY || now_ms() > deadline) return 0;
        sleep_ms(delay);
        delay = delay * 2 > 100 ? 100 : delay * 2;
    }
    return 1;
}

/* Remove the state dir if it holds plain files only (state.json, state.brief, exec.fifo...);
 * with anything else in it, touch nothing: Python's remove_dir, which needs state.json. */
static int remove_state_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT;
    int dfd = dirfd(d), plain = 1;
    struct dirent *e;
    while (plain && (e = readdir(d)) != NULL)
        plain = (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN) || strcmp(e->d_name, ".") == 0 ||
                strcmp(e->d_name, "..") == 0;
    if (plain) {
        rewinddir(d);
        while ((e = readdir(d)) != NULL)
            if (e->d_type != DT_DIR && strcmp(e->d_name, "state.json") != 0)
                unlinkat(dfd, e->d_name, 0);
        unlinkat(dfd, "state.json", 0); /* last: until then, Python can still take over */
    }
    closedir(d);
    return plain && (rmdir(dir) == 0 || errno == ENOENT);
}

/* delete [--force] ID: delete.py, for a thawed container with nothing left in its cgroups. */
static enum outcome do_delete(const struct globals *g, const char *id, int force) {
    struct brief b;
    if (!load_brief(g->root, id, &b) || maybe_frozen(&b)) return HAND_OVER;
    if (init_alive(&b)) {
        if (!force && !fifo_exists(&b)) return HAND_OVER; /* running: Python refuses */
        signal_init(&b, SIGKILL); /* a created container is killed without --force, as runc */
        long long deadline = now_ms() + DEATH_TIMEOUT_MS;
        while (init_alive(&b)) {
            if (now_ms() > deadline) return HAND_OVER;
            sleep_ms(1);
        }
    }
    if (cgroups_busy(&b)) return HAND_OVER; /* leftovers to kill: Python's loop */
    for (int i = 0; i < b.ncgroups; i++)
        if (!remove_cgroup(b.cgroups[i])) return HAND_OVER;
    return remove_state_dir(b.dir) ? DONE : HAND_OVER;
}

/* --name VALUE or --name=VALUE at argv[*i]; advances *i past the value. */
static int valued_flag(char **argv, int argc, int *i, const char *name, const char **out) {
    const char *a = argv[*i];
    while (*a == '-') a++;
    size_t len = strlen(name);
    if (strncmp(a, name, len) != 0) return 0;
    if (a[len] == '=') {
        *out = a + len + 1;
        return 1;
    }
    if (a[len] != '\0' || *i + 1 >= argc) return 0;
    *out = argv[++*i];
    return 1;
}

int main(int argc, char **argv) {
    saved_argv = argv;
    struct globals g = {DEFAULT_ROOT, NULL, "text"};
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!valued_flag(argv, argc, &i, "root", &g.root) &&
            !valued_flag(argv, argc, &i, "log-format", &g.log_format) &&
            !valued_flag(argv, argc, &i, "log", &g.log))
            hand_over(); /* --debug, --help, --version, --systemd-cgroup... */
    }
    if (i >= argc) hand_over();
    const char *command = argv[i++];
    int nargs = argc - i;
    char **args = argv + i;
    if (strcmp(command, "exec") == 0) {
        /* exec --process FILE [--pid-file FILE] ID, flags in any order, before the id */
        const char *process = NULL, *pid_file = NULL, *id = NULL;
        for (int k = 0; k < nargs; k++) {
            if (args[k][0] != '-') {
                if (id) hand_over(); /* arguments after the id: Python's */
                id = args[k];
            } else if (id || !(valued_flag(args, nargs, &k, "process", &process) ||
                               valued_flag(args, nargs, &k, "p", &process) ||
                               valued_flag(args, nargs, &k, "pid-file", &pid_file))) {
                hand_over();
            }
        }
        if (id && process) do_exec(&g, id, process, pid_file);
        hand_over();
    }
    for (int k = 0; k < nargs; k++) {
        /* flags: only delete's --force / -f here; anything else is Python's */
        if (args[k][0] == '-' && !(strcmp(command, "delete") == 0 &&
                                   (strcmp(args[k], "--force") == 0 || strcmp(args[k], "-f") == 0)))
            hand_over();
    }
    enum outcome outcome = HAND_OVER;
    if (strcmp(command, "start") == 0 && nargs == 1) {
        outcome = do_start(&g, args[0]);
    } else if (strcmp(command, "kill") == 0 && (nargs == 1 || nargs == 2)) {
        outcome = do_kill(&g, args[0], nargs == 2 ? args[1] : "SIGTERM");
    } else if (strcmp(command, "delete") == 0 && (nargs == 1 || nargs == 2)) {
        const char *id = NULL;
        int force = 0;
        for (int k = 0; k < nargs; k++) {
            if (args[k][0] == '-')
                force = 1;
            else if (!id)
                id = args[k];
            else
                hand_over();
        }
        if (id) outcome = do_delete(&g, id, force);
    }
    if (outcome == HAND_OVER) hand_over();
    return 0;
}
