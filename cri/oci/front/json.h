/* The front end's JSON reader (json.c): a parsed document as a tree. */
#ifndef CRI_OCI_JSON_H
#define CRI_OCI_JSON_H

#include <stddef.h>

enum json_type { JSON_NULL, JSON_BOOL, JSON_INT, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json {
    enum json_type type;
    int boolean;                  /* JSON_BOOL */
    int negative;                 /* JSON_INT: -magnitude */
    unsigned long long magnitude; /* JSON_INT */
    char *str;                    /* JSON_STRING, decoded */
    char *key;                    /* a member of an object: its key */
    size_t count;                 /* JSON_ARRAY, JSON_OBJECT: members */
    struct json *child, *next;    /* the first member; the next member of the parent */
};

/* The document, or NULL for anything malformed or beyond this reader (see json.c). */
struct json *json_parse(const char *text, size_t len);
void json_free(struct json *n);
/* An object's member (the last of that key), or NULL. */
const struct json *json_get(const struct json *object, const char *key);
/* Missing or null. */
int json_absent(const struct json *n);

#endif
