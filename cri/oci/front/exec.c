/* exec without Python: `cri-oci exec --process FILE [--pid-file FILE] ID`, the command every
 * ExecSync (a kubelet probe) and streaming exec runs.
 *
 * Why: in Python the exec costs about 8 ms of set-up (the state, the namespaces, the seccomp
 * profile compiled again, a fork of a 17 MiB interpreter) on top of an interpreter start or a
 * fork of the daemon's fork server. Here it is a few system calls.
 *
 * It does what cri/oci/exec.py does, in the same order, for the plain case: a container with a
 * state.brief and an exec.brief (written at create: whether the container has an AppArmor
 * profile, and its seccomp filter as compiled then, in seccomp.bpf), a process file of the
 * fields below, and nothing but that file, a pid file and the id on the command line. It hands
 * every other case to the Python CLI, unchanged: a terminal, a console socket, preserve-fds,
 * --detach; AppArmor, SELinux, a scheduler, an I/O priority, a username; a container in a user
 * namespace of its own; capabilities the host cannot grant (Python drops them with a warning);
 * a process file it cannot read; and any failure of the child before its execve (the executable
 * not found, a cwd that is not there...), so that the error message and exit status are always
 * the Python CLI's. The child it started then is killed first: nothing of it has run.
 *
 * Child, as exec.py's _child and init.process_steps: PDEATHSIG, join the cgroups, join the
 * namespaces (pid and time through the fork), setsid, oom_score_adj, rlimits, no_new_privs,
 * seccomp (here unless no_new_privs, then last), bounding set, uid/gid/groups with KEEPCAPS and
 * the umask, the capability sets and ambient ones, cwd, environment (HOME from the container's
 * /etc/passwd), the executable through the process's PATH, stdio, signals, other fds, execve.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "front.h"
#include "json.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

#define MAX_PROCESS_FILE (1 << 20)
#define MAX_FILTER 4096 /* BPF_MAXINSNS */
#define MAX_GROUPS 65536
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* capabilities.NAMES, by number */
static const char *const CAP_NAMES[] = {
    "CAP_CHOWN",          "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
    "CAP_FSETID",         "CAP_KILL",         "CAP_SETGID",          "CAP_SETUID",
    "CAP_SETPCAP",        "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",      "CAP_NET_RAW",      "CAP_IPC_LOCK",        "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",     "CAP_SYS_RAWIO",    "CAP_SYS_CHROOT",      "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",      "CAP_SYS_ADMIN",    "CAP_SYS_BOOT",        "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",   "CAP_SYS_TIME",     "CAP_SYS_TTY_CONFIG",  "CAP_MKNOD",
    "CAP_LEASE",          "CAP_AUDIT_WRITE",  "CAP_AUDIT_CONTROL",   "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",   "CAP_MAC_ADMIN",    "CAP_SYSLOG",          "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",  "CAP_AUDIT_READ",   "CAP_PERFMON",         "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};
#define NCAPS ((int)(sizeof CAP_NAMES / sizeof CAP_NAMES[0]))

/* rlimits.RLIMITS, by number */
static const char *const RLIMIT_NAMES[] = {
    "RLIMIT_CPU",    "RLIMIT_FSIZE",   "RLIMIT_DATA",  "RLIMIT_STACK",      "RLIMIT_CORE",
    "RLIMIT_RSS",    "RLIMIT_NPROC",   "RLIMIT_NOFILE", "RLIMIT_MEMLOCK",   "RLIMIT_AS",
    "RLIMIT_LOCKS",  "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
};
#define NRLIMITS ((int)(sizeof RLIMIT_NAMES / sizeof RLIMIT_NAMES[0]))

/* namespaces.ORDER less user (a container with its own is Python's): name, clone flag */
static const struct {
    const char *name;
    int flag;
    int for_children; /* entered through the fork: pid, time */
} NAMESPACES[] = {
    {"cgroup", CLONE_NEWCGROUP, 0}, {"ipc", CLONE_NEWIPC, 0},   {"uts", CLONE_NEWUTS, 0},
    {"net", CLONE_NEWNET, 0},       {"pid", CLONE_NEWPID, 1},   {"time", CLONE_NEWTIME, 1},
    {"mnt", CLONE_NEWNS, 0},
};
#define NNAMESPACES ((int)(sizeof NAMESPACES / sizeof NAMESPACES[0]))

struct rlimit_entry {
    int which;
    struct rlimit value;
};

struct process {
    struct json *doc;
    const char **args;
    size_t nargs;
    const char **env; /* the raw KEY=VALUE entries */
    size_t nenv;
    const char *cwd;
    uid_t uid;
    gid_t gid;
    gid_t *groups;
    size_t ngroups;
    int has_umask;
    mode_t umask;
    int has_caps;
    uint64_t bounding, effective, permitted, inheritable, ambient;
    struct rlimit_entry rlimits[NRLIMITS * 4];
    int nrlimits;
    int no_new_privs;
    int has_oom;
    long long oom_score_adj;
};

/* A JSON integer in [min, max]. */
static int int_in(const struct json *n, long long min, unsigned long long max, long long *out) {
    if (!n || n->type != JSON_INT) return 0;
    if (n->negative) {
        if (min >= 0 || n->magnitude > (unsigned long long)(-(min + 1)) + 1) return 0;
        *out = -(long long)(n->magnitude - 1) - 1;
        return 1;
    }
    if (n->magnitude > max) return 0;
    *out = (long long)n->magnitude;
    return 1;
}

/* An optional list of strings (process.args, process.env, a capability set). */
static int strings(const struct json *n, const char ***out, size_t *count) {
    *out = NULL;
    *count = 0;
    if (json_absent(n)) return 1;
    if (n->type != JSON_ARRAY) return 0;
    const char **list = calloc(n->count + 1, sizeof *list);
    if (!list) return 0;
    size_t i = 0;
    for (const struct json *m = n->child; m; m = m->next) {
        if (m->type != JSON_STRING) {
            free(list);
            return 0;
        }
        list[i++] = m->str;
    }
    *out = list;
    *count = i;
    return 1;
}

/* capabilities.parse_names: CAP_X or X, any case; 0 on an unknown name (Python's error). */
static int cap_mask(const struct json *n, uint64_t *mask) {
    const char **names;
    size_t count;
    *mask = 0;
    if (!strings(n, &names, &count)) return 0;
    for (size_t i = 0; i < count; i++) {
        char key[64];
        const char *name = names[i];
        size_t len = strlen(name);
        int prefixed = len >= 4 && strncasecmp(name, "CAP_", 4) == 0;
        if (len + 5 > sizeof key) {
            free(names);
            return 0;
        }
        snprintf(key, sizeof key, "%s%s", prefixed ? "" : "CAP_", name);
        for (char *c = key; *c; c++)
            if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 'a' + 'A');
        int found = -1;
        for (int cap = 0; cap < NCAPS; cap++)
            if (strcmp(key, CAP_NAMES[cap]) == 0) found = cap;
        if (found < 0) {
            free(names);
            return 0;
        }
        *mask |= 1ULL << found;
    }
    free(names);
    return 1;
}

/* spec.parse_process for the fields this front end applies; 0: anything for Python. */
static int load_process(const char *path, struct process *p) {
    static char text[MAX_PROCESS_FILE];
    memset(p, 0, sizeof *p);
    ssize_t len = read_file(path, text, sizeof text);
    if (len <= 0 || (size_t)len == sizeof text - 1) return 0;
    const struct json *doc = p->doc = json_parse(text, (size_t)len);
    if (!doc || doc->type != JSON_OBJECT) return 0;
    const struct json *v;
    /* what only Python applies */
    if ((v = json_get(doc, "terminal")) && !json_absent(v) &&
        (v->type != JSON_BOOL || v->boolean))
        return 0;
    if ((v = json_get(doc, "apparmorProfile")) && !json_absent(v) &&
        (v->type != JSON_STRING || v->str[0]))
        return 0;
    if ((v = json_get(doc, "selinuxLabel")) && !json_absent(v) &&
        (v->type != JSON_STRING || v->str[0]))
        return 0;
    if (!json_absent(json_get(doc, "scheduler")) || !json_absent(json_get(doc, "ioPriority")))
        return 0;

    if (!strings(json_get(doc, "args"), &p->args, &p->nargs) || p->nargs == 0) return 0;
    if (!strings(json_get(doc, "env"), &p->env, &p->nenv)) return 0;
    for (size_t i = 0; i < p->nenv; i++)
        if (!strchr(p->env[i], '=')) return 0;
    v = json_get(doc, "cwd");
    p->cwd = json_absent(v) ? "/" : v->type == JSON_STRING ? v->str : NULL;
    if (!p->cwd || p->cwd[0] != '/') return 0;

    const struct json *user = json_get(doc, "user");
    if (!user || user->type != JSON_OBJECT) return 0;
    if ((v = json_get(user, "username")) && !json_absent(v) &&
        (v->type != JSON_STRING || v->str[0]))
        return 0;
    long long n;
    v = json_get(user, "uid");
    if (json_absent(v)) n = 0;
    else if (!int_in(v, 0, 0xFFFFFFFEULL, &n)) return 0;
    p->uid = (uid_t)n;
    v = json_get(user, "gid");
    if (json_absent(v)) n = 0;
    else if (!int_in(v, 0, 0xFFFFFFFEULL, &n)) return 0;
    p->gid = (gid_t)n;
    v = json_get(user, "additionalGids");
    if (!json_absent(v)) {
        if (v->type != JSON_ARRAY || v->count > MAX_GROUPS) return 0;
        p->groups = calloc(v->count + 1, sizeof *p->groups);
        if (!p->groups) return 0;
        for (const struct json *g = v->child; g; g = g->next) {
            if (!int_in(g, 0, 0xFFFFFFFEULL, &n)) return 0;
            p->groups[p->ngroups++] = (gid_t)n;
        }
    }
    v = json_get(user, "umask");
    if (!json_absent(v)) {
        if (!int_in(v, 0, 07777, &n)) return 0;
        p->has_umask = 1;
        p->umask = (mode_t)n;
    }

    const struct json *caps = json_get(doc, "capabilities");
    if (!json_absent(caps)) {
        if (caps->type != JSON_OBJECT) return 0;
        p->has_caps = 1;
        if (!cap_mask(json_get(caps, "bounding"), &p->bounding) ||
            !cap_mask(json_get(caps, "effective"), &p->effective) ||
            !cap_mask(json_get(caps, "permitted"), &p->permitted) ||
            !cap_mask(json_get(caps, "inheritable"), &p->inheritable) ||
            !cap_mask(json_get(caps, "ambient"), &p->ambient))
            return 0;
    }

    v = json_get(doc, "rlimits");
    if (!json_absent(v)) {
        if (v->type != JSON_ARRAY || v->count > sizeof p->rlimits / sizeof p->rlimits[0])
            return 0;
        for (const struct json *r = v->child; r; r = r->next) {
            const struct json *type = json_get(r, "type");
            if (r->type != JSON_OBJECT || !type || type->type != JSON_STRING) return 0;
            int which = -1;
            for (int k = 0; k < NRLIMITS; k++)
                if (strcmp(type->str, RLIMIT_NAMES[k]) == 0) which = k;
            const struct json *soft = json_get(r, "soft"), *hard = json_get(r, "hard");
            if (which < 0 || !soft || !hard || soft->type != JSON_INT || hard->type != JSON_INT)
                return 0;
            struct rlimit_entry *e = &p->rlimits[p->nrlimits++];
            e->which = which;
            /* rlimits._py: negative or 2^64-1 is unlimited */
            e->value.rlim_cur = soft->negative ? RLIM_INFINITY : (rlim_t)soft->magnitude;
            e->value.rlim_max = hard->negative ? RLIM_INFINITY : (rlim_t)hard->magnitude;
        }
    }
    v = json_get(doc, "noNewPrivileges");
    if (!json_absent(v)) {
        if (v->type != JSON_BOOL) return 0;
        p->no_new_privs = v->boolean;
    }
    v = json_get(doc, "oomScoreAdj");
    if (!json_absent(v)) {
        if (!int_in(v, -1000, 1000, &p->oom_score_adj)) return 0;
        p->has_oom = 1;
    }
    return 1;
}

/* <dir>/exec.brief, written by create (statefile.save_exec_brief): "seccomp none|FLAGS" and
 * "apparmor 0|1"; the filter itself in <dir>/seccomp.bpf. */
struct exec_brief {
    int seccomp; /* a filter to install */
    unsigned long flags;
    int apparmor;
    struct sock_filter filter[MAX_FILTER];
    unsigned short length;
};

static int load_exec_brief(const char *dir, struct exec_brief *e) {
    char path[PATH_MAX + 16], text[256];
    snprintf(path, sizeof path, "%s/exec.brief", dir);
    ssize_t len = read_file(path, text, sizeof text);
    if (len <= 0 || (size_t)len == sizeof text - 1) return 0;
    int have_seccomp = 0, have_apparmor = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        char *value = strchr(line, ' ');
        if (!value) return 0;
        *value++ = '\0';
        if (strcmp(line, "seccomp") == 0) {
            have_seccomp = 1;
            if (strcmp(value, "none") != 0) {
                char *end;
                e->flags = strtoul(value, &end, 10);
                if (*end || end == value) return 0;
                e->seccomp = 1;
            }
        } else if (strcmp(line, "apparmor") == 0) {
            have_apparmor = 1;
            e->apparmor = strcmp(value, "0") != 0;
        } else {
            return 0;
        }
    }
    if (!have_seccomp || !have_apparmor) return 0;
    if (!e->seccomp) return 1;
    snprintf(path, sizeof path, "%s/seccomp.bpf", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t total = 0;
    char *buf = (char *)e->filter;
    for (;;) {
        ssize_t r = read(fd, buf + total, sizeof e->filter - total);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        total += (size_t)r;
        if (total == sizeof e->filter) break;
    }
    char extra;
    int more = read(fd, &extra, 1) > 0;
    close(fd);
    if (more || total == 0 || total % sizeof e->filter[0]) return 0;
    e->length = (unsigned short)(total / sizeof e->filter[0]);
    return 1;
}

/* ---- the child ------------------------------------------------------------------------------ */

struct child {
    const struct brief *b;
    const struct process *p;
    const struct exec_brief *e;
    int join_fds[NNAMESPACES];
    int njoin;
    int last_cap;
    int error_fd;
};

/* The parent only needs to know that it failed: Python then says how. */
_Noreturn static void fail(const struct child *c, const char *step) {
    int saved = errno;
    char msg[128];
    int n = snprintf(msg, sizeof msg, "%s: %s", step, strerror(saved));
    if (n > 0) (void)!write(c->error_fd, msg, (size_t)n);
    _exit(1);
}

static int write_string(const char *path, const char *value) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, value, strlen(value));
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)strlen(value) ? 0 : -1;
}

static int install_filter(const struct exec_brief *e) {
    struct sock_fprog prog = {e->length, (struct sock_filter *)e->filter};
    if (e->flags == 0) return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, e->flags, &prog);
}

/* Our permitted and inheritable sets (capget). */
static int cap_get(uint64_t *permitted, uint64_t *inheritable) {
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) != 0) return -1;
    *permitted = (uint64_t)data[0].permitted | (uint64_t)data[1].permitted << 32;
    *inheritable = (uint64_t)data[0].inheritable | (uint64_t)data[1].inheritable << 32;
    return 0;
}

static int cap_set(uint64_t effective, uint64_t permitted, uint64_t inheritable) {
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {
        {(uint32_t)effective, (uint32_t)permitted, (uint32_t)inheritable},
        {(uint32_t)(effective >> 32), (uint32_t)(permitted >> 32), (uint32_t)(inheritable >> 32)},
    };
    return (int)syscall(SYS_capset, &hdr, data);
}

/* users.home_for: the uid's home in the container's /etc/passwd, else "/". */
static const char *home_for(uid_t uid) {
    static char line[4096], home[4096];
    FILE *f = fopen("/etc/passwd", "re");
    if (!f) return "/";
    char uid_text[16];
    snprintf(uid_text, sizeof uid_text, "%u", (unsigned)uid);
    const char *found = NULL;
    while (!found && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *fields[7];
        int n = 0;
        for (char *s = line; n < 7; n++) {
            fields[n] = s;
            char *colon = strchr(s, ':');
            if (!colon) {
                n++;
                break;
            }
            *colon = '\0';
            s = colon + 1;
        }
        if (n >= 6 && strcmp(fields[2], uid_text) == 0) {
            snprintf(home, sizeof home, "%s", fields[5][0] ? fields[5] : "/");
            found = home;
        }
    }
    fclose(f);
    return found ? found : "/";
}

/* process.environment: entries in order, a repeated key keeping its first place and its last
 * value, HOME added when missing. */
static char **environment(const struct process *p) {
    char **env = calloc(p->nenv + 2, sizeof *env);
    size_t n = 0;
    if (!env) return NULL;
    for (size_t i = 0; i < p->nenv; i++) {
        size_t key = (size_t)(strchr(p->env[i], '=') - p->env[i]);
        size_t k = 0;
        while (k < n && !(strncmp(env[k], p->env[i], key + 1) == 0)) k++;
        env[k] = (char *)p->env[i];
        if (k == n) n++;
    }
    int has_home = 0;
    for (size_t k = 0; k < n; k++) has_home |= strncmp(env[k], "HOME=", 5) == 0;
    if (!has_home) {
        const char *home = home_for(p->uid);
        char *entry = malloc(strlen(home) + 6);
        if (!entry) return NULL;
        sprintf(entry, "HOME=%s", home);
        env[n++] = entry;
    }
    env[n] = NULL;
    return env;
}

static int executable(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* process.resolve: args[0] through the process's PATH, in the container's root. */
static char *resolve(const char *arg0, char **env) {
    if (strchr(arg0, '/')) return executable(arg0) ? (char *)arg0 : NULL;
    const char *path = DEFAULT_PATH;
    for (char **e = env; *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0) path = *e + 5;
    static char candidate[PATH_MAX];
    for (const char *d = path;; d++) {
        const char *end = strchrnul(d, ':');
        int len = (int)(end - d);
        const char *dir = len ? d : ".";
        if (!len) len = 1;
        int slash = dir[len - 1] == '/';
        if (snprintf(candidate, sizeof candidate, "%.*s%s%s", len, dir, slash ? "" : "/", arg0) <
                (int)sizeof candidate &&
            executable(candidate))
            return candidate;
        if (!*end) return NULL;
        d = end;
    }
}

/* close_other_fds: everything from 3 on closes at the execve (the error pipe with it). */
static void close_other_fds(const struct child *c) {
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        int self = dirfd(d);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            int fd = atoi(e->d_name);
            if (fd >= 3 && fd != self) fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
        closedir(d);
        return;
    }
    for (int fd = 3; fd < (1 << 20); fd++)
        if (fd != c->error_fd) close(fd);
}

_Noreturn static void run_child(const struct child *c) {
    const struct process *p = c->p;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) fail(c, "pdeathsig");
    const char *member = c->b->cgroup_version == 1 ? "tasks" : "cgroup.procs";
    for (int i = 0; i < c->b->ncgroups; i++) {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/%s", c->b->cgroups[i], member);
        if (write_string(path, "0") != 0) fail(c, "join cgroup");
    }
    for (int i = 0; i < c->njoin; i++)
        if (setns(c->join_fds[i], 0) != 0) fail(c, "join namespaces");
    if (setsid() < 0) fail(c, "setsid");
    if (p->has_oom) {
        char value[32];
        snprintf(value, sizeof value, "%lld", p->oom_score_adj);
        if (write_string("/proc/self/oom_score_adj", value) != 0) {
            if (errno != EACCES && errno != EPERM) fail(c, "oom_score_adj");
            /* init.set_oom_score_adj: lowering it needs CAP_SYS_RESOURCE; said, then kept */
            int saved = errno;
            char current[32] = "";
            read_file("/proc/self/oom_score_adj", current, sizeof current);
            current[strcspn(current, "\n")] = '\0';
            fprintf(stderr, "oom_score_adj %s not permitted (%s); keeping %s\n", value,
                    strerror(saved), current);
        }
    }
    for (int i = 0; i < p->nrlimits; i++)
        if (setrlimit(p->rlimits[i].which, &p->rlimits[i].value) != 0) fail(c, "rlimits");
    if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        fail(c, "no_new_privileges");
    if (c->e->seccomp && !p->no_new_privs && install_filter(c->e) != 0) fail(c, "seccomp");
    if (p->has_caps)
        for (int cap = 0; cap <= c->last_cap; cap++)
            if (!(p->bounding >> cap & 1) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 &&
                errno != EINVAL)
                fail(c, "capabilities bounding set");
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 || setgroups(p->ngroups, p->groups) != 0 ||
        setresgid(p->gid, p->gid, p->gid) != 0 || setresuid(p->uid, p->uid, p->uid) != 0 ||
        prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0)
        fail(c, "user");
    umask(p->has_umask ? p->umask : 022);
    if (p->has_caps) {
        uint64_t permitted_now, inheritable_now;
        if (cap_get(&permitted_now, &inheritable_now) != 0) fail(c, "capabilities");
        uint64_t inheritable = p->inheritable & (p->bounding | inheritable_now);
        if (cap_set(p->effective, p->permitted, inheritable) != 0 ||
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
            fail(c, "capabilities");
        uint64_t ambient = p->ambient & p->permitted & inheritable;
        for (int cap = 0; cap < NCAPS; cap++)
            if (ambient >> cap & 1 && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0)
                fail(c, "ambient capabilities");
    }
    if (chdir(p->cwd) != 0) fail(c, "cwd");
    char **env = environment(p);
    if (!env) fail(c, "environment");
    char *path = resolve(p->args[0], env);
    if (!path) {
        errno = ENOENT;
        fail(c, "executable");
    }
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_SETFD, 0) != 0) fail(c, "stdio");
    static const int RESET[] = {SIGPIPE, SIGXFSZ, SIGINT, SIGTERM, SIGCHLD, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < sizeof RESET / sizeof RESET[0]; i++) signal(RESET[i], SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    close_other_fds(c);
    if (c->e->seccomp && p->no_new_privs && install_filter(c->e) != 0) fail(c, "seccomp");
    execve(path, (char *const *)p->args, env);
    fail(c, "exec");
}

/* ---- the command ---------------------------------------------------------------------------- */

static int last_cap(void) {
    char text[16];
    if (read_file("/proc/sys/kernel/cap_last_cap", text, sizeof text) <= 0) return NCAPS - 1;
    return atoi(text);
}

/* Whether namespace `name` of `pid` is another than ours; -1 if that cannot be told.
 * (namespaces.same_as_ours: the inode; a kernel without the namespace has none to join.) */
static int other_namespace(long pid, const char *name) {
    char path[64];
    struct stat theirs, ours;
    snprintf(path, sizeof path, "/proc/%ld/ns/%s", pid, name);
    if (stat(path, &theirs) != 0) return errno == ENOENT ? 0 : -1;
    snprintf(path, sizeof path, "/proc/self/ns/%s", name);
    if (stat(path, &ours) != 0) return errno == ENOENT ? 0 : -1;
    return theirs.st_ino != ours.st_ino;
}

enum outcome do_exec(const struct globals *g, const char *id, const char *process_file,
                     const char *pid_file) {
    static struct brief b;
    static struct exec_brief e;
    static struct process p;
    if (!load_brief(g->root, id, &b) || !init_alive(&b) || maybe_frozen(&b)) return HAND_OVER;
    if (!load_exec_brief(b.dir, &e) || e.apparmor) return HAND_OVER;
    if (!load_process(process_file, &p)) return HAND_OVER;
    if (p.has_caps) {
        /* capabilities.apply drops, with a warning, what the host cannot grant */
        uint64_t available, inheritable;
        if (cap_get(&available, &inheritable) != 0 ||
            (p.effective | p.permitted | p.inheritable) & ~available)
            return HAND_OVER;
    }
    struct child c = {.b = &b, .p = &p, .e = &e, .njoin = 0, .last_cap = last_cap()};
    int restore[2][2], nrestore = 0; /* our own pid/time for children, set back after the fork */
    if (other_namespace(b.pid, "user") != 0) return HAND_OVER;
    for (int i = 0; i < NNAMESPACES; i++) {
        int other = other_namespace(b.pid, NAMESPACES[i].name);
        if (other < 0) goto out;
        if (!other) continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/ns/%s", b.pid, NAMESPACES[i].name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) goto out;
        if (!NAMESPACES[i].for_children) {
            c.join_fds[c.njoin++] = fd;
            continue;
        }
        snprintf(path, sizeof path, "/proc/self/ns/%s", NAMESPACES[i].name);
        int ours = open(path, O_RDONLY | O_CLOEXEC);
        if (ours < 0 || setns(fd, NAMESPACES[i].flag) != 0) {
            if (ours >= 0) close(ours);
            close(fd);
            goto out;
        }
        close(fd);
        restore[nrestore][0] = ours;
        restore[nrestore++][1] = NAMESPACES[i].flag;
    }
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) goto out;
    c.error_fd = pipe_fds[1];
    pid_t pid = fork();
    if (pid == 0) {
        close(pipe_fds[0]);
        run_child(&c);
    }
    close(pipe_fds[1]);
    char message[256];
    ssize_t n = -1;
    if (pid > 0) {
        do n = read(pipe_fds[0], message, sizeof message - 1);
        while (n < 0 && errno == EINTR);
    }
    close(pipe_fds[0]);
    if (pid > 0 && n != 0) { /* a failure before the execve: Python does it again, and says why */
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        pid = -1;
    }
    for (int i = nrestore - 1; i >= 0; i--) {
        (void)!setns(restore[i][0], restore[i][1]); /* only a hand-over forks again */
        close(restore[i][0]);
    }
    for (int i = 0; i < c.njoin; i++) close(c.join_fds[i]);
    if (pid < 0) return HAND_OVER;
    if (pid_file) {
        int fd = open(pid_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            char text[32];
            int len = snprintf(text, sizeof text, "%d", (int)pid);
            (void)!write(fd, text, (size_t)len);
            close(fd);
        }
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) exit(1);
    exit(WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
out:
    for (int i = nrestore - 1; i >= 0; i--) {
        (void)!setns(restore[i][0], restore[i][1]);
        close(restore[i][0]);
    }
    for (int i = 0; i < c.njoin; i++) close(c.join_fds[i]);
    return HAND_OVER;
}
