/* A small JSON reader for the front end's exec: the process file (`exec --process`).
 *
 * It parses a whole document into a tree of nodes, one allocation each, and answers
 * "no" (NULL) to anything it does not take, so the caller hands the command to Python: strings
 * with an escaped NUL, nesting deeper than MAX_DEPTH, numbers that are not integers. Keys are
 * looked up by a linear scan (a process object has a dozen). Duplicate keys: the last wins, as
 * Python's json.loads.
 */
#include "json.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32

struct parser {
    const char *p, *end;
    int depth;
};

static struct json *node(enum json_type type) {
    struct json *n = calloc(1, sizeof *n);
    if (n) n->type = type;
    return n;
}

void json_free(struct json *n) {
    while (n) {
        struct json *next = n->next;
        json_free(n->child);
        free(n->key);
        free(n->str);
        free(n);
        n = next;
    }
}

static void skip_space(struct parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static char *put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* A string at ps->p (the opening quote), decoded into a new NUL-terminated buffer. */
static char *parse_string(struct parser *ps) {
    if (ps->p >= ps->end || *ps->p != '"') return NULL;
    const char *s = ++ps->p;
    while (ps->p < ps->end && *ps->p != '"') {
        if (*ps->p == '\\') ps->p++;
        ps->p++;
    }
    if (ps->p >= ps->end) return NULL;
    size_t raw = (size_t)(ps->p - s);
    ps->p++; /* the closing quote */
    char *out = malloc(raw + 1), *o = out; /* decoding never grows the text */
    if (!out) return NULL;
    for (const char *c = s; c < s + raw; c++) {
        if ((unsigned char)*c < 0x20) goto bad; /* control characters must be escaped */
        if (*c != '\\') {
            *o++ = *c;
            continue;
        }
        c++;
        switch (*c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (s + raw - c < 5 || !hex4(c + 1, &cp)) goto bad;
            c += 4;
            if (cp >= 0xD800 && cp < 0xDC00) { /* a surrogate pair */
                if (s + raw - c < 7 || c[1] != '\\' || c[2] != 'u' || !hex4(c + 3, &lo) ||
                    lo < 0xDC00 || lo >= 0xE000)
                    goto bad;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                c += 6;
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                goto bad;
            }
            if (cp == 0) goto bad; /* no C string holds it: Python's to judge */
            o = put_utf8(o, cp);
            break;
        }
        default: goto bad;
        }
    }
    *o = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

static struct json *parse_value(struct parser *ps);

static struct json *parse_number(struct parser *ps) {
    int negative = 0;
    if (ps->p < ps->end && *ps->p == '-') {
        negative = 1;
        ps->p++;
    }
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return NULL;
    if (*ps->p == '0' && ps->p + 1 < ps->end && ps->p[1] >= '0' && ps->p[1] <= '9') return NULL;
    unsigned long long v = 0;
    for (; ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9'; ps->p++) {
        unsigned d = (unsigned)(*ps->p - '0');
        if (v > (~0ULL - d) / 10) return NULL; /* beyond 64 bits */
        v = v * 10 + d;
    }
    if (ps->p < ps->end && (*ps->p == '.' || *ps->p == 'e' || *ps->p == 'E')) return NULL;
    if (negative && v > (1ULL << 63)) return NULL;
    struct json *n = node(JSON_INT);
    if (!n) return NULL;
    n->negative = negative && v != 0;
    n->magnitude = v;
    return n;
}

static int literal(struct parser *ps, const char *word) {
    size_t len = strlen(word);
    if ((size_t)(ps->end - ps->p) < len || memcmp(ps->p, word, len) != 0) return 0;
    ps->p += len;
    return 1;
}

/* The members of an array or object, after its opening bracket. */
static struct json *parse_container(struct parser *ps, enum json_type type, char close) {
    struct json *n = node(type), **tail;
    if (!n) return NULL;
    tail = &n->child;
    if (++ps->depth > MAX_DEPTH) goto bad;
    skip_space(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        ps->depth--;
        return n;
    }
    for (;;) {
        char *key = NULL;
        skip_space(ps);
        if (type == JSON_OBJECT) {
            if (!(key = parse_string(ps))) goto bad;
            skip_space(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                free(key);
                goto bad;
            }
            ps->p++;
        }
        struct json *member = parse_value(ps);
        if (!member) {
            free(key);
            goto bad;
        }
        member->key = key;
        *tail = member;
        tail = &member->next;
        n->count++;
        skip_space(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            ps->depth--;
            return n;
        }
        goto bad;
    }
bad:
    json_free(n);
    return NULL;
}

static struct json *parse_value(struct parser *ps) {
    skip_space(ps);
    if (ps->p >= ps->end) return NULL;
    switch (*ps->p) {
    case '{': ps->p++; return parse_container(ps, JSON_OBJECT, '}');
    case '[': ps->p++; return parse_container(ps, JSON_ARRAY, ']');
    case '"': {
        char *s = parse_string(ps);
        struct json *n = s ? node(JSON_STRING) : NULL;
        if (!n) {
            free(s);
            return NULL;
        }
        n->str = s;
        return n;
    }
    case 't':
        if (!literal(ps, "true")) return NULL;
        struct json *t = node(JSON_BOOL);
        if (t) t->boolean = 1;
        return t;
    case 'f': return literal(ps, "false") ? node(JSON_BOOL) : NULL;
    case 'n': return literal(ps, "null") ? node(JSON_NULL) : NULL;
    default: return parse_number(ps);
    }
}

struct json *json_parse(const char *text, size_t len) {
    struct parser ps = {text, text + len, 0};
    struct json *root = parse_value(&ps);
    skip_space(&ps);
    if (root && ps.p != ps.end) {
        json_free(root);
        return NULL;
    }
    return root;
}

const struct json *json_get(const struct json *object, const char *key) {
    const struct json *found = NULL;
    if (!object || object->type != JSON_OBJECT) return NULL;
    for (const struct json *m = object->child; m; m = m->next)
        if (strcmp(m->key, key) == 0) found = m;
    return found;
}

int json_absent(const struct json *n) {
    return n == NULL || n->type == JSON_NULL;
}
