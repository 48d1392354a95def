/*
 * json.h — a small, strict JSON (RFC 8259) reader and the writing helpers
 * the frontend's file headers need (safetensors checkpoints). The reader
 * never trusts its input: every byte is checked, nesting is capped, strings
 * are validated as UTF-8 and decoded; a bad document is a message, never a
 * crash. Every allocation goes through the caller's lm_mem. It depends on
 * ir/base.h only.
 *
 * Not a general JSON library: numbers are kept as their text (files hold
 * sizes and offsets that a double would round), and "\u0000" is refused,
 * so every decoded string is an ordinary C string.
 */
#ifndef LOOM_JSON_H
#define LOOM_JSON_H

#include "base.h"

/* ------------------------------------------------------------------ */
/* Reading                                                            */
/* ------------------------------------------------------------------ */

typedef enum json_type {
    JSON_NULL = 0,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} json_type;

/* One value of a parsed document. Children of a container are contiguous
 * in the document's value array; an object's are key, value, key, value. */
typedef struct json_val {
    json_type type;
    uint32_t n;   /* string: bytes (NUL excluded); number: text length; array: items; object: members */
    uint32_t at;  /* string, number: offset in chars; array, object: first child in vals */
    uint32_t pos; /* byte offset in the source, for messages */
} json_val;

typedef struct json_doc {
    lm_mem *mem;
    json_val *vals; /* children first, the root last */
    size_t nvals, vals_cap;
    char *chars;    /* decoded strings and number texts, each NUL-terminated */
    size_t nchars, chars_cap;
} json_doc;

/* Parses src[0, len) (no terminating NUL needed) into *doc, which the
 * caller frees with json_free whatever the result. Returns LOOM_OK,
 * LOOM_ERR_FORMAT with "at byte <k>: <what>" in err, or LOOM_ERR_NOMEM
 * (recorded in mem's error record). Only whitespace may follow the value. */
loom_code json_parse(json_doc *doc, lm_mem *mem, const char *src, size_t len, char *err, size_t errsize);
void json_free(json_doc *doc);

const json_val *json_root(const json_doc *doc); /* NULL before a successful parse */
const char *json_type_name(json_type t);        /* "a string", "an object" ... */

/* The i-th item of an array / member of an object (its key in *key). */
const json_val *json_item(const json_doc *doc, const json_val *arr, size_t i);
const json_val *json_member(const json_doc *doc, const json_val *obj, size_t i, const char **key);
/* The value of the first member named key, or NULL. */
const json_val *json_get(const json_doc *doc, const json_val *obj, const char *key);
/* A string's decoded text, or a number's source text (NUL-terminated). */
const char *json_text(const json_doc *doc, const json_val *v);
/* A number written as an integer ("-12", not "1.0" or "1e3") that fits an
 * int64; false otherwise. */
bool json_int64(const json_doc *doc, const json_val *v, int64_t *out);

/* Whether s[0, n) is well-formed UTF-8 (no overlongs, no surrogates). */
bool json_utf8_valid(const char *s, size_t n);

/* ------------------------------------------------------------------ */
/* Writing                                                            */
/* ------------------------------------------------------------------ */

/* A growable text buffer, kept NUL-terminated. Appending is sticky on
 * failure (nomem), so a document is written as a run of calls and checked
 * once. */
typedef struct json_buf {
    lm_mem *mem;
    char *s;
    size_t len, cap;
    bool nomem;
} json_buf;

bool json_put(json_buf *b, const char *s, size_t n);
bool json_puts(json_buf *b, const char *s);
bool json_putf(json_buf *b, const char *fmt, ...) LM_PRINTF(2, 3);
/* s[0, n) as a quoted JSON string: quotes, backslashes and control
 * characters escaped, other bytes as they are (the caller checks UTF-8). */
bool json_put_string(json_buf *b, const char *s, size_t n);
void json_buf_free(json_buf *b);

#endif /* LOOM_JSON_H */
