/*
 * cri-shim-loop: the shim's steady state, compiled.
 *
 * The Python shim (cri/shim/monitor.py) creates the container, reports on the sync fd, and then
 * execs this program with the fds it opened: the container's output pipes (or its pty), stdin,
 * the control socket's listener, the init's pidfd and the log. From then on a container costs
 * a few hundred KiB instead of a Python interpreter with the executor loaded (about 10 MiB).
 * exec keeps our pid, our start time (the daemon's identity check), our children and the child
 * subreaper flag, so nothing the daemon sees changes.
 *
 * It does what Monitor._loop and Monitor._finish do, which stay the reference (the tests run both):
 * container output -> CRI log records (cri/logs/cri_format.py) and attached clients; the control
 * socket (ping, reopen_log, attach; cri/shim/protocol.py); reaping the init and orphans; then
 * the log flushed and closed, and the exit file written atomically.
 *
 *   cri-shim-loop --id ID --init-pid N --listener FD --stdout FD [--stderr FD] [--terminal]
 *                 [--pidfd FD] [--stdin FD] [--stdin-once] [--log-fd FD --log-path PATH]
 *
 * The working directory is the state dir; stderr is shim.log.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define READ_SIZE (64 * 1024)
#define MAX_LINE (64 * 1024)        /* a control request line (protocol.MAX_LINE) */
#define MAX_LOG_LINE (16 * 1024)    /* cri_format.DEFAULT_MAX_LINE_SIZE */
#define ATTACH_LIMIT (4 * 1024 * 1024)
#define MAX_FRAME (1024 * 1024)
#define MAX_CONNS 64
#define TICK_MS 1000
#define DRAIN_GRACE_MS 2000
#define LOG_FILE_MODE 0640

enum { STDOUT_STREAM = 0, STDERR_STREAM = 1 };
enum { FRAME_STDIN = 0, FRAME_STDOUT = 1, FRAME_STDERR = 2, FRAME_RESIZE = 4, FRAME_STDIN_CLOSE = 5 };
static const char *const STREAM_NAMES[2] = {"stdout", "stderr"};

struct buf {
    char *p;
    size_t len, cap;
};

struct output {
    int fd; /* -1 once at EOF */
    int stream;
};

struct conn {
    int fd; /* -1: free slot */
    int attached;
    int want[2]; /* stdout, stderr frames */
    int stdin_open;
    struct buf in, out;
};

static struct {
    const char *id;
    pid_t init_pid;
    int pidfd, listener, sigfd;
    struct output outputs[2];
    int tty;      /* the container has a pty: outputs[0] is its master */
    int terminal; /* an fd of the pty master, for resize and the EOF character; or -1 */
    int stdin_w, stdin_once, stdin_closing;
    struct buf stdin_buf;
    const char *log_path;
    int log_fd, log_failing;
    struct buf pending[2]; /* per stream: output waiting for its newline */
    struct conn conns[MAX_CONNS];
    int exited, exit_code, exit_signal;
    long long finished_at;
} m;

/* --- small things ---------------------------------------------------------------------------- */

static void say(const char *level, const char *fmt, ...) {
    struct timeval tv;
    struct tm tm;
    char when[32];
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(stderr, "%s,%03ld shim[%d] %.12s %s cri.shim.loop: ", when, (long)(tv.tv_usec / 1000),
            (int)getpid(), m.id ? m.id : "", level);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

static void buf_add(struct buf *b, const void *data, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            say("ERROR", "out of memory");
            exit(1);
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void buf_drop(struct buf *b, size_t n) {
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
    if (b->len == 0 && b->cap > 64 * 1024) { /* give a burst's memory back */
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
}

static void buf_free(struct buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void close_quietly(int *fd) {
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* --- the CRI log (cri/logs/cri_format.py: LogEncoder) ----------------------------------------- */

static void record(struct buf *out, long long ts, int stream, int partial, const char *p, size_t n) {
    char head[64];
    struct tm tm;
    time_t secs = (time_t)(ts / 1000000000LL);
    gmtime_r(&secs, &tm);
    size_t k = strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &tm);
    k += (size_t)snprintf(head + k, sizeof head - k, ".%09lldZ %s %s ", ts % 1000000000LL,
                          STREAM_NAMES[stream], partial ? "P" : "F");
    buf_add(out, head, k);
    buf_add(out, p, n);
    buf_add(out, "\n", 1);
}

static void write_log(struct buf *records) {
    if (records->len == 0 || m.log_fd < 0) {
        records->len = 0;
        return;
    }
    if (write_all(m.log_fd, records->p, records->len) < 0) {
        /* Dropped, not buffered: a full disk must not grow the shim or stall the container. */
        if (!m.log_failing)
            say("ERROR", "writing the container log failed, dropping output: %s", strerror(errno));
        m.log_failing = 1;
    } else {
        if (m.log_failing)
            say("INFO", "writing the container log works again");
        m.log_failing = 0;
    }
    records->len = 0;
}

static void log_feed(int stream, const char *data, size_t n, long long ts) {
    static struct buf out;
    struct buf *b = &m.pending[stream];
    buf_add(b, data, n);
    size_t start = 0;
    char *nl;
    while ((nl = memchr(b->p + start, '\n', b->len - start)) != NULL) {
        size_t end = (size_t)(nl - b->p);
        while (end - start > MAX_LOG_LINE) {
            record(&out, ts, stream, 1, b->p + start, MAX_LOG_LINE);
            start += MAX_LOG_LINE;
        }
        record(&out, ts, stream, 0, b->p + start, end - start);
        start = end + 1;
    }
    /* strictly longer: a line of exactly the limit waits for its newline and becomes one F */
    while (b->len - start > MAX_LOG_LINE) {
        record(&out, ts, stream, 1, b->p + start, MAX_LOG_LINE);
        start += MAX_LOG_LINE;
    }
    buf_drop(b, start);
    write_log(&out);
}

/* What is left of a stream at its EOF is a complete line: F, not P (see LogEncoder.flush). */
static void log_flush(int stream, long long ts) {
    static struct buf out;
    struct buf *b = &m.pending[stream];
    if (b->len == 0)
        return;
    record(&out, ts, stream, 0, b->p, b->len);
    b->len = 0;
    write_log(&out);
}

/* --- flat JSON objects (the control protocol's requests; protocol.py writes them) ------------- */

struct field {
    char key[16];
    char type; /* 's' string, 'b' bool, 'n' number, 'z' null */
    char str[64];
    long long num;
};

static const char *skip_ws(const char *s, const char *end) {
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
        s++;
    return s;
}

/* A JSON string at s (after its quote): copied (truncated) into out; returns past the quote. */
static const char *json_string(const char *s, const char *end, char *out, size_t cap) {
    size_t k = 0;
    while (s < end && *s != '"') {
        char c = *s++;
        if (c == '\\') {
            if (s >= end)
                return NULL;
            c = *s++;
            switch (c) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u':
                if (end - s < 4)
                    return NULL;
                s += 4;
                c = '?';
                break;
            case '"': case '\\': case '/': break;
            default: return NULL;
            }
        }
        if (k + 1 < cap)
            out[k++] = c;
    }
    if (s >= end)
        return NULL;
    out[k] = 0;
    return s + 1;
}

/* Returns the number of fields, or -1 if this is not a flat JSON object. */
static int parse_object(const char *s, size_t len, struct field *fields, int max) {
    const char *end = s + len;
    int n = 0;
    s = skip_ws(s, end);
    if (s >= end || *s++ != '{')
        return -1;
    s = skip_ws(s, end);
    if (s < end && *s == '}')
        return skip_ws(s + 1, end) == end ? 0 : -1;
    for (;;) {
        struct field scratch, *f = n < max ? &fields[n] : &scratch;
        s = skip_ws(s, end);
        if (s >= end || *s++ != '"' || (s = json_string(s, end, f->key, sizeof f->key)) == NULL)
            return -1;
        s = skip_ws(s, end);
        if (s >= end || *s++ != ':')
            return -1;
        s = skip_ws(s, end);
        if (s >= end)
            return -1;
        if (*s == '"') {
            f->type = 's';
            if ((s = json_string(s + 1, end, f->str, sizeof f->str)) == NULL)
                return -1;
        } else if (end - s >= 4 && memcmp(s, "true", 4) == 0) {
            f->type = 'b', f->num = 1, s += 4;
        } else if (end - s >= 5 && memcmp(s, "false", 5) == 0) {
            f->type = 'b', f->num = 0, s += 5;
        } else if (end - s >= 4 && memcmp(s, "null", 4) == 0) {
            f->type = 'z', s += 4;
        } else if (*s == '-' || (*s >= '0' && *s <= '9')) {
            char num[32];
            size_t k = 0;
            while (s < end && k + 1 < sizeof num && strchr("+-.eE0123456789", *s))
                num[k++] = *s++;
            num[k] = 0;
            char *stop;
            double d = strtod(num, &stop);
            if (*stop)
                return -1;
            f->type = 'n';
            f->num = (long long)d;
            if ((double)f->num != d)
                f->type = 'f'; /* not an integer */
        } else {
            return -1; /* nested values never occur in requests */
        }
        if (f != &scratch)
            n++;
        s = skip_ws(s, end);
        if (s < end && *s == ',') {
            s++;
            continue;
        }
        if (s < end && *s == '}')
            return skip_ws(s + 1, end) == end ? n : -1;
        return -1;
    }
}

static const struct field *lookup(const struct field *fields, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (strcmp(fields[i].key, key) == 0)
            return &fields[i];
    return NULL;
}

static int truthy(const struct field *f) {
    /* Python's bool() of a JSON value, for the values requests carry */
    if (f == NULL)
        return 0;
    switch (f->type) {
    case 'b': case 'n': case 'f': return f->num != 0 || f->type == 'f';
    case 's': return f->str[0] != 0;
    default: return 0;
    }
}

static void json_escaped(struct buf *out, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf_add(out, "\\", 1);
            buf_add(out, s, 1);
        } else if (c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            buf_add(out, esc, 6);
        } else {
            buf_add(out, s, 1);
        }
    }
}

/* --- control connections ---------------------------------------------------------------------- */

static void send_reply(struct conn *c, const char *error, int with_pid) {
    struct buf out = {0};
    if (error) {
        buf_add(&out, "{\"error\":\"", 10);
        json_escaped(&out, error);
        buf_add(&out, "\"}\n", 3);
    } else if (with_pid) {
        char line[64];
        int k = snprintf(line, sizeof line, "{\"ok\":true,\"pid\":%d}\n", (int)m.init_pid);
        buf_add(&out, line, (size_t)k);
    } else {
        buf_add(&out, "{\"ok\":true}\n", 12);
    }
    /* the socket has a 1 s send timeout (a client that stops reading) */
    size_t off = 0;
    while (off < out.len) {
        ssize_t w = send(c->fd, out.p + off, out.len - off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        off += (size_t)w;
    }
    buf_free(&out);
}

static void close_conn(struct conn *c) {
    close_quietly(&c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    c->attached = 0;
}

static void flush_stdin(void);

static void detach(struct conn *c, const char *why) {
    int had_stdin = c->stdin_open;
    close_conn(c);
    int left = 0;
    for (int i = 0; i < MAX_CONNS; i++)
        left += m.conns[i].fd >= 0 && m.conns[i].attached;
    if (had_stdin && m.stdin_once) {
        m.stdin_closing = 1;
        flush_stdin();
    }
    say("INFO", "detached: %s; %d attached", why, left);
}

static void flush_stdin(void) {
    if (m.stdin_w < 0) {
        m.stdin_buf.len = 0;
        return;
    }
    while (m.stdin_buf.len > 0) {
        ssize_t w = write(m.stdin_w, m.stdin_buf.p, m.stdin_buf.len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN) {
                say("INFO", "container stdin closed: %s", strerror(errno));
                m.stdin_buf.len = 0;
            }
            break;
        }
        buf_drop(&m.stdin_buf, (size_t)w);
    }
    if (m.stdin_buf.len == 0 && m.stdin_closing) {
        say("INFO", "stdin once: closing the container's stdin");
        if (m.terminal >= 0) /* a terminal has no half-close: end of input is the EOF character */
            (void)!write(m.stdin_w, "\x04", 1);
        if (m.terminal == m.stdin_w)
            m.terminal = -1;
        close_quietly(&m.stdin_w);
    }
}

static void flush_attached(struct conn *c) {
    while (c->out.len > 0) {
        ssize_t w = send(c->fd, c->out.p, c->out.len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                detach(c, "the client went away");
            return;
        }
        buf_drop(&c->out, (size_t)w);
    }
}

static void send_attached(struct conn *c, const char *frame, size_t n) {
    buf_add(&c->out, frame, n);
    if (c->out.len > ATTACH_LIMIT) {
        detach(c, "the client is not reading its output");
        return;
    }
    flush_attached(c);
}

static void attached_input(struct conn *c) {
    size_t start = 0;
    while (c->in.len - start >= 5) {
        const unsigned char *h = (const unsigned char *)c->in.p + start;
        uint32_t len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
        if (len > MAX_FRAME) {
            detach(c, "attach frame too large");
            return;
        }
        if (c->in.len - start < 5 + (size_t)len)
            break;
        const char *payload = c->in.p + start + 5;
        switch (h[0]) {
        case FRAME_STDIN:
            if (c->stdin_open) {
                if (m.stdin_buf.len > ATTACH_LIMIT)
                    say("WARNING", "the container is not reading its stdin: input dropped");
                else
                    buf_add(&m.stdin_buf, payload, len);
            }
            break;
        case FRAME_STDIN_CLOSE:
            if (c->stdin_open) {
                c->stdin_open = 0;
                if (m.stdin_once)
                    m.stdin_closing = 1;
            }
            break;
        case FRAME_RESIZE:
            if (m.terminal >= 0) {
                struct field f[4];
                int n = parse_object(payload, len, f, 4);
                const struct field *w = n < 0 ? NULL : lookup(f, n, "width");
                const struct field *hh = n < 0 ? NULL : lookup(f, n, "height");
                if (w && hh && w->type == 'n' && hh->type == 'n') {
                    struct winsize ws = {.ws_row = (unsigned short)hh->num,
                                         .ws_col = (unsigned short)w->num};
                    ioctl(m.terminal, TIOCSWINSZ, &ws);
                }
            }
            break;
        case FRAME_STDOUT: case FRAME_STDERR:
            break; /* ours to send, not to receive: ignored, as the Python shim does */
        default:
            detach(c, "unknown attach frame kind");
            return;
        }
        start += 5 + len;
    }
    buf_drop(&c->in, start);
    flush_stdin();
}

static void start_attach(struct conn *c, const struct field *f, int n) {
    int want_stdin = truthy(lookup(f, n, "stdin"));
    if (want_stdin && m.stdin_w < 0) {
        send_reply(c, "the container was not created with stdin", 0);
        close_conn(c);
        return;
    }
    if (m.exited && m.outputs[0].fd < 0 && m.outputs[1].fd < 0) {
        send_reply(c, "the container has exited", 0);
        close_conn(c);
        return;
    }
    send_reply(c, NULL, 1);
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    c->attached = 1;
    c->want[STDOUT_STREAM] = truthy(lookup(f, n, "stdout"));
    c->want[STDERR_STREAM] = truthy(lookup(f, n, "stderr"));
    c->stdin_open = want_stdin;
    int count = 0;
    for (int i = 0; i < MAX_CONNS; i++)
        count += m.conns[i].fd >= 0 && m.conns[i].attached;
    say("INFO", "attached (stdin=%s stdout=%s stderr=%s); %d attached",
        want_stdin ? "True" : "False", c->want[0] ? "True" : "False",
        c->want[1] ? "True" : "False", count);
    if (want_stdin) /* a container not reading its stdin must not stall us */
        fcntl(m.stdin_w, F_SETFL, fcntl(m.stdin_w, F_GETFL) | O_NONBLOCK);
}

static void reopen_log(struct conn *c) {
    if (m.log_path == NULL) {
        send_reply(c, "container has no log path", 0);
        return;
    }
    /* the new file opened before the old is closed: a failure keeps output going somewhere */
    int fd = open(m.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, LOG_FILE_MODE);
    if (fd < 0) {
        char error[4200];
        snprintf(error, sizeof error, "reopen %s: [Errno %d] %s: '%s'", m.log_path, errno,
                 strerror(errno), m.log_path);
        send_reply(c, error, 0);
        return;
    }
    close_quietly(&m.log_fd);
    m.log_fd = fd;
    m.log_failing = 0;
    say("INFO", "reopened log %s", m.log_path);
    send_reply(c, NULL, 0);
}

/* One request line; returns 1 when the connection became an attach stream (or was closed). */
static int control_line(struct conn *c, const char *line, size_t len) {
    struct field f[8];
    int n = parse_object(line, len, f, 8);
    const struct field *op = n < 0 ? NULL : lookup(f, n, "op");
    if (n < 0) {
        send_reply(c, "not a JSON message", 0);
        return 0;
    }
    if (op == NULL || op->type != 's') {
        send_reply(c, "'op' missing or not str", 0);
        return 0;
    }
    if (strcmp(op->str, "ping") == 0) {
        send_reply(c, NULL, 1);
    } else if (strcmp(op->str, "reopen_log") == 0) {
        say("INFO", "request reopen_log");
        reopen_log(c);
    } else if (strcmp(op->str, "attach") == 0) {
        say("INFO", "request attach");
        start_attach(c, f, n);
        return 1;
    } else {
        char error[128];
        snprintf(error, sizeof error, "unknown op '%s'", op->str);
        send_reply(c, error, 0);
    }
    return 0;
}

static void on_control(struct conn *c) {
    char data[4096];
    ssize_t r = recv(c->fd, data, sizeof data, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (r <= 0) {
        close_conn(c);
        return;
    }
    buf_add(&c->in, data, (size_t)r);
    size_t start = 0;
    char *nl;
    while ((nl = memchr(c->in.p + start, '\n', c->in.len - start)) != NULL) {
        size_t end = (size_t)(nl - c->in.p);
        size_t line_start = start;
        start = end + 1;
        if (control_line(c, c->in.p + line_start, end - line_start)) {
            if (c->fd >= 0) { /* what came after the attach line is the stream's first bytes */
                buf_drop(&c->in, start);
                if (c->in.len > 0)
                    attached_input(c);
            }
            return;
        }
    }
    buf_drop(&c->in, start);
    if (c->in.len > MAX_LINE) {
        send_reply(c, "line longer than 65536 bytes", 0);
        close_conn(c);
    }
}

static void on_attached(struct conn *c, short revents) {
    if ((revents & POLLOUT) && c->out.len > 0) {
        flush_attached(c);
        if (c->fd < 0)
            return;
    }
    if (!(revents & (POLLIN | POLLHUP | POLLERR)))
        return;
    char data[READ_SIZE];
    ssize_t r = recv(c->fd, data, sizeof data, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (r <= 0) {
        detach(c, "the client closed the stream");
        return;
    }
    buf_add(&c->in, data, (size_t)r);
    attached_input(c);
}

static void on_accept(void) {
    int fd = accept4(m.listener, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    for (int i = 0; i < MAX_CONNS; i++) {
        struct conn *c = &m.conns[i];
        if (c->fd < 0) {
            memset(c, 0, sizeof *c);
            c->fd = fd;
            struct timeval tv = {.tv_sec = 1};
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            return;
        }
    }
    say("WARNING", "too many control connections; refusing one");
    close(fd);
}

/* --- the container ---------------------------------------------------------------------------- */

static void on_output(struct output *o) {
    static char data[READ_SIZE];
    ssize_t r = read(o->fd, data, sizeof data);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return; /* a tty's master shares O_NONBLOCK with the stdin end attach writes to */
    int pty = m.tty && o->stream == STDOUT_STREAM;
    if (r < 0 && !(pty && errno == EIO)) /* EIO: the pty's last slave closed, its EOF */
        say("ERROR", "reading %s: %s", STREAM_NAMES[o->stream], strerror(errno));
    long long ts = now_ns();
    if (r <= 0) {
        if (pty) /* the stdin end (a dup of the master) still reaches the pty */
            m.terminal = m.stdin_w;
        close_quietly(&o->fd);
        log_flush(o->stream, ts);
        return;
    }
    if (m.log_fd >= 0)
        log_feed(o->stream, data, (size_t)r, ts);
    char header[5] = {(char)(o->stream == STDOUT_STREAM ? FRAME_STDOUT : FRAME_STDERR),
                      (char)(r >> 24), (char)(r >> 16), (char)(r >> 8), (char)r};
    for (int i = 0; i < MAX_CONNS; i++) {
        struct conn *c = &m.conns[i];
        if (c->fd >= 0 && c->attached && c->want[o->stream]) {
            buf_add(&c->out, header, 5);
            send_attached(c, data, (size_t)r);
        }
    }
}

static void reap(void) {
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        if (pid == m.init_pid && !m.exited) {
            m.exited = 1;
            m.finished_at = now_ns();
            if (WIFSIGNALED(status)) {
                m.exit_signal = WTERMSIG(status);
                m.exit_code = 128 + m.exit_signal;
            } else {
                m.exit_code = WEXITSTATUS(status);
            }
            say("INFO", "init %d exited: exit_code=%d signal=%d", (int)pid, m.exit_code,
                m.exit_signal);
        }
    }
}

/* --- the end ---------------------------------------------------------------------------------- */

static int write_exit_file(void) {
    char data[256];
    char sig[16] = "null";
    if (m.exit_signal)
        snprintf(sig, sizeof sig, "%d", m.exit_signal);
    int n = snprintf(data, sizeof data,
                     "{\"exit_code\":%d,\"finished_at\":%lld,\"signal\":%s,\"oom_killed\":false}\n",
                     m.exit_code, m.finished_at, sig);
    /* readers see no file or the whole file, also after a crash: temp, fsync, rename, fsync dir */
    int fd = open(".exit.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (write_all(fd, data, (size_t)n) < 0 || fsync(fd) < 0) {
        close(fd);
        return -1;
    }
    close(fd);
    if (rename(".exit.tmp", "exit") < 0)
        return -1;
    int dir = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        fsync(dir);
        close(dir);
    }
    return 0;
}

static int finish(void) {
    long long ts = now_ns();
    for (int i = 0; i < 2; i++) {
        struct output *o = &m.outputs[i];
        if (o->fd >= 0) {
            log_flush(o->stream, ts);
            close_quietly(&o->fd);
        }
    }
    log_flush(STDOUT_STREAM, ts);
    log_flush(STDERR_STREAM, ts);
    close_quietly(&m.log_fd);
    close_quietly(&m.listener);
    unlink("shim.sock");
    close_quietly(&m.stdin_w);
    for (int i = 0; i < MAX_CONNS; i++) {
        struct conn *c = &m.conns[i];
        if (c->fd < 0)
            continue;
        if (c->attached && c->out.len > 0) { /* best effort: what is queued, then EOF */
            fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
            struct timeval tv = {.tv_sec = 1};
            setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            size_t off = 0;
            while (off < c->out.len) {
                ssize_t w = send(c->fd, c->out.p + off, c->out.len - off, MSG_NOSIGNAL);
                if (w <= 0)
                    break;
                off += (size_t)w;
            }
        }
        close_conn(c);
    }
    if (write_exit_file() < 0) {
        say("ERROR", "could not record the exit of container %s: %s", m.id, strerror(errno));
        return 1;
    }
    say("INFO", "exit file written: exit_code=%d", m.exit_code);
    return 0;
}

/* --- main ------------------------------------------------------------------------------------- */

enum { W_SIGNAL, W_PIDFD, W_LISTENER, W_OUTPUT, W_STDIN, W_CONN };

static int loop(void) {
    struct pollfd fds[6 + MAX_CONNS];
    int kind[6 + MAX_CONNS], index[6 + MAX_CONNS];
    long long drain_deadline = 0;
    for (;;) {
        reap();
        int timeout = TICK_MS;
        if (m.exited) {
            if (m.outputs[0].fd < 0 && m.outputs[1].fd < 0)
                break;
            long long now = mono_ms();
            if (drain_deadline == 0) {
                drain_deadline = now + DRAIN_GRACE_MS;
            } else if (now >= drain_deadline) {
                say("WARNING", "output still open %.1fs after the init exited; a process outside "
                    "the container holds it. Stopping.", DRAIN_GRACE_MS / 1000.0);
                break;
            }
            if (drain_deadline - now < timeout)
                timeout = (int)(drain_deadline - now);
        }
        int n = 0;
#define WATCH(fd_, events_, kind_, index_) \
    (fds[n] = (struct pollfd){.fd = (fd_), .events = (events_)}, kind[n] = (kind_), \
     index[n] = (index_), n++)
        WATCH(m.sigfd, POLLIN, W_SIGNAL, 0);
        if (m.pidfd >= 0)
            WATCH(m.pidfd, POLLIN, W_PIDFD, 0);
        WATCH(m.listener, POLLIN, W_LISTENER, 0);
        for (int i = 0; i < 2; i++)
            if (m.outputs[i].fd >= 0)
                WATCH(m.outputs[i].fd, POLLIN, W_OUTPUT, i);
        if (m.stdin_w >= 0 && m.stdin_buf.len > 0)
            WATCH(m.stdin_w, POLLOUT, W_STDIN, 0);
        for (int i = 0; i < MAX_CONNS; i++) {
            struct conn *c = &m.conns[i];
            if (c->fd >= 0)
                WATCH(c->fd, POLLIN | (c->attached && c->out.len ? POLLOUT : 0), W_CONN, i);
        }
#undef WATCH
        int ready = poll(fds, (nfds_t)n, timeout);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            say("ERROR", "poll: %s", strerror(errno));
            return 1;
        }
        for (int i = 0; i < n && ready > 0; i++) {
            if (!fds[i].revents)
                continue;
            ready--;
            switch (kind[i]) {
            case W_SIGNAL: {
                struct signalfd_siginfo info;
                while (read(m.sigfd, &info, sizeof info) > 0) {
                }
                break;
            }
            case W_PIDFD: /* only a wake-up: reap() collects the status; it stays readable */
                close_quietly(&m.pidfd);
                break;
            case W_LISTENER:
                on_accept();
                break;
            case W_OUTPUT:
                if (m.outputs[index[i]].fd == fds[i].fd)
                    on_output(&m.outputs[index[i]]);
                break;
            case W_STDIN:
                flush_stdin();
                break;
            case W_CONN: {
                struct conn *c = &m.conns[index[i]];
                if (c->fd != fds[i].fd)
                    break; /* closed meanwhile */
                if (c->attached)
                    on_attached(c, fds[i].revents);
                else
                    on_control(c);
                break;
            }
            }
        }
    }
    return finish();
}

static int number_arg(const char *value) {
    char *end;
    long n = strtol(value, &end, 10);
    if (!*value || *end || n < 0 || n > 1 << 30) {
        fprintf(stderr, "cri-shim-loop: not a number: %s\n", value);
        exit(2);
    }
    return (int)n;
}

static int fd_arg(const char *value) {
    int fd = number_arg(value);
    if (fd > 1 << 20) {
        fprintf(stderr, "cri-shim-loop: not a file descriptor: %s\n", value);
        exit(2);
    }
    return fd;
}

int main(int argc, char **argv) {
    m.pidfd = m.listener = m.terminal = m.stdin_w = m.log_fd = -1;
    m.outputs[0] = (struct output){.fd = -1, .stream = STDOUT_STREAM};
    m.outputs[1] = (struct output){.fd = -1, .stream = STDERR_STREAM};
    for (int i = 0; i < MAX_CONNS; i++)
        m.conns[i].fd = -1;
    int terminal = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--stdin-once") == 0) {
            m.stdin_once = 1;
            continue;
        }
        if (strcmp(a, "--terminal") == 0) {
            terminal = 1;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "cri-shim-loop: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--id") == 0) m.id = v;
        else if (strcmp(a, "--init-pid") == 0) m.init_pid = number_arg(v);
        else if (strcmp(a, "--pidfd") == 0) m.pidfd = fd_arg(v);
        else if (strcmp(a, "--listener") == 0) m.listener = fd_arg(v);
        else if (strcmp(a, "--stdout") == 0) m.outputs[0].fd = fd_arg(v);
        else if (strcmp(a, "--stderr") == 0) m.outputs[1].fd = fd_arg(v);
        else if (strcmp(a, "--stdin") == 0) m.stdin_w = fd_arg(v);
        else if (strcmp(a, "--log-fd") == 0) m.log_fd = fd_arg(v);
        else if (strcmp(a, "--log-path") == 0) m.log_path = v;
        else {
            fprintf(stderr, "cri-shim-loop: unknown argument %s\n", a);
            return 2;
        }
    }
    if (m.id == NULL || m.init_pid <= 0 || m.listener < 0 || m.outputs[0].fd < 0) {
        fprintf(stderr, "cri-shim-loop: --id, --init-pid, --listener and --stdout are required\n");
        return 2;
    }
    if (terminal) {
        m.tty = 1;
        m.terminal = m.outputs[0].fd;
    }
    /* none of these may reach a process we might start, and none must block us */
    int owned[] = {m.pidfd, m.listener, m.outputs[0].fd, m.outputs[1].fd, m.stdin_w, m.log_fd};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        if (owned[i] >= 0)
            fcntl(owned[i], F_SETFD, FD_CLOEXEC);
    fcntl(m.listener, F_SETFL, fcntl(m.listener, F_GETFL) | O_NONBLOCK);
    signal(SIGPIPE, SIG_IGN);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    m.sigfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
    if (m.sigfd < 0) {
        say("ERROR", "signalfd: %s", strerror(errno));
        return 1;
    }
    say("INFO", "watching container %s, init pid %d", m.id, (int)m.init_pid);
    return loop();
}
