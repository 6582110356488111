/* What front.c shares with the commands in other files (exec.c). */
#ifndef CRI_OCI_FRONT_H
#define CRI_OCI_FRONT_H

#include <limits.h>
#include <sys/types.h>

#define MAX_CGROUPS 32

enum outcome { DONE, HAND_OVER };

struct globals {
    const char *root, *log, *log_format;
};

/* <root>/<id>/state.brief (see front.c) */
struct brief {
    char dir[PATH_MAX];
    long pid;
    unsigned long long pid_start;
    int cgroup_version;
    char freezer[PATH_MAX];
    int ncgroups;
    char *cgroups[MAX_CGROUPS];
    char text[16384];
};

ssize_t read_file(const char *path, char *buf, size_t size);
int load_brief(const char *root, const char *id, struct brief *b);
int init_alive(const struct brief *b);
int maybe_frozen(const struct brief *b);

/* exec.c: returns only to hand over; a done exec exits with the process's status. */
enum outcome do_exec(const struct globals *g, const char *id, const char *process_file,
                     const char *pid_file);

#endif
