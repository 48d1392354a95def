/*
 * json.c — the strict JSON reader and the writing helpers of json.h.
 *
 * The reader is a recursive-descent parser over a byte range that is never
 * assumed to be NUL-terminated. Children of a container are collected on
 * a scratch stack while it is open and moved to the document in one piece
 * when it closes, so every container's children are contiguous. Nesting
 * is capped (JSON_MAX_DEPTH) so hostile input cannot exhaust the C stack.
 */
#include "json.h"

#include <stdio.h>

enum { JSON_MAX_DEPTH = 64 };

/* ------------------------------------------------------------------ */
/* UTF-8                                                              */
/* ------------------------------------------------------------------ */

/* The length of the well-formed UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t k;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF)
        k = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
        k = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        k = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0; /* a continuation byte, an overlong lead, or beyond U+10FFFF */
    if (n < k)
        return 0;
    for (size_t j = 1; j < k; j++) {
        if ((s[j] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return k;
}

bool json_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(u + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

static size_t utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ------------------------------------------------------------------ */
/* The parser                                                         */
/* ------------------------------------------------------------------ */

typedef struct parser {
    json_doc *d;
    const unsigned char *s;
    size_t len, pos;
    json_val *stack; /* children of the open containers */
    size_t nstack, stack_cap;
    char *err;
    size_t errsize;
    loom_code code;
} parser;

static bool fail(parser *p, const char *fmt, ...) LM_PRINTF(2, 3);
static bool fail(parser *p, const char *fmt, ...)
{
    if (p->code == LOOM_OK) {
        p->code = LOOM_ERR_FORMAT;
        char what[160];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        if (p->errsize)
            snprintf(p->err, p->errsize, "at byte %zu: %s", p->pos, what);
    }
    return false;
}

static bool nomem(parser *p)
{
    p->code = LOOM_ERR_NOMEM;
    if (p->errsize)
        snprintf(p->err, p->errsize, "out of memory");
    return false;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

/* The byte at pos, described for a message. */
static const char *describe(parser *p, char *buf, size_t size)
{
    if (p->pos >= p->len)
        return "the end of the input";
    unsigned char c = p->s[p->pos];
    if (c >= 0x20 && c < 0x7F)
        snprintf(buf, size, "'%c'", c);
    else
        snprintf(buf, size, "byte 0x%02x", c);
    return buf;
}

static bool expect_char(parser *p, char c)
{
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == (unsigned char)c) {
        p->pos++;
        return true;
    }
    char b[16];
    return fail(p, "expected '%c', found %s", c, describe(p, b, sizeof b));
}

/* Room for n more bytes of decoded text. */
static bool chars_reserve(parser *p, size_t n)
{
    json_doc *d = p->d;
    if (d->nchars + n >= UINT32_MAX)
        return fail(p, "document too large");
    return LM_GROW(d->mem, d->chars, d->chars_cap, d->nchars + n) || nomem(p);
}

static int hex4(const unsigned char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i];
        int h = c >= '0' && c <= '9' ? (int)(c - '0')
                : c >= 'a' && c <= 'f' ? (int)(c - 'a' + 10)
                : c >= 'A' && c <= 'F' ? (int)(c - 'A' + 10)
                                       : -1;
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

static bool parse_string(parser *p, json_val *out)
{
    size_t start = ++p->pos, end = start; /* past the opening quote */
    while (end < p->len && p->s[end] != '"')
        end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len)
        return fail(p, "unterminated string");
    /* decoding never lengthens: an escape is at least as long as its UTF-8 */
    if (!chars_reserve(p, end - start + 1))
        return false;
    uint32_t at = (uint32_t)p->d->nchars;
    char *o = p->d->chars + at;
    while (p->pos < end) {
        unsigned char c = p->s[p->pos];
        if (c < 0x20)
            return fail(p, "control character 0x%02x in a string (must be escaped)", c);
        if (c >= 0x80) {
            size_t k = utf8_seq(p->s + p->pos, end - p->pos);
            if (!k)
                return fail(p, "a string is not valid UTF-8");
            memcpy(o, p->s + p->pos, k);
            o += k;
            p->pos += k;
            continue;
        }
        if (c != '\\') {
            *o++ = (char)c;
            p->pos++;
            continue;
        }
        unsigned char e = p->s[p->pos + 1]; /* end is past it: the scan skipped it */
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *hit = e ? strchr(from, e) : NULL;
        if (hit) {
            *o++ = to[hit - from];
            p->pos += 2;
            continue;
        }
        if (e != 'u')
            return fail(p, "unknown escape '\\%c'", e >= 0x20 && e < 0x7F ? e : '?');
        int cp = end - p->pos >= 6 ? hex4(p->s + p->pos + 2) : -1;
        if (cp < 0)
            return fail(p, "bad \\u escape (four hex digits expected)");
        size_t used = 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            /* a high surrogate must be followed by an escaped low one */
            int lo = end - p->pos >= 12 && p->s[p->pos + 6] == '\\' && p->s[p->pos + 7] == 'u'
                         ? hex4(p->s + p->pos + 8)
                         : -1;
            if (lo < 0xDC00 || lo > 0xDFFF)
                return fail(p, "unpaired surrogate in a \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            used = 12;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return fail(p, "unpaired surrogate in a \\u escape");
        } else if (cp == 0) {
            return fail(p, "\\u0000 is not allowed in a string");
        }
        o += utf8_put(o, (uint32_t)cp);
        p->pos += used;
    }
    *o = 0;
    size_t n = (size_t)(o - (p->d->chars + at));
    p->d->nchars += n + 1;
    p->pos = end + 1;
    out->type = JSON_STRING;
    out->n = (uint32_t)n;
    out->at = at;
    return true;
}

static bool is_digit(parser *p, size_t i) { return i < p->len && p->s[i] >= '0' && p->s[i] <= '9'; }

/* RFC 8259's grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool parse_number(parser *p, json_val *out)
{
    size_t i = p->pos;
    if (i < p->len && p->s[i] == '-')
        i++;
    if (!is_digit(p, i))
        return fail(p, "a number needs a digit");
    if (p->s[i] == '0')
        i++;
    else
        while (is_digit(p, i))
            i++;
    if (i < p->len && p->s[i] == '.') {
        if (!is_digit(p, ++i))
            return fail(p, "a number needs a digit after '.'");
        while (is_digit(p, i))
            i++;
    }
    if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
        i++;
        if (i < p->len && (p->s[i] == '+' || p->s[i] == '-'))
            i++;
        if (!is_digit(p, i))
            return fail(p, "a number needs a digit in its exponent");
        while (is_digit(p, i))
            i++;
    }
    size_t n = i - p->pos;
    if (!chars_reserve(p, n + 1))
        return false;
    uint32_t at = (uint32_t)p->d->nchars;
    memcpy(p->d->chars + at, p->s + p->pos, n);
    p->d->chars[at + n] = 0;
    p->d->nchars += n + 1;
    p->pos = i;
    out->type = JSON_NUMBER;
    out->n = (uint32_t)n;
    out->at = at;
    return true;
}

static bool parse_literal(parser *p, const char *word, json_type t, json_val *out)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) {
        char b[16];
        return fail(p, "unexpected %s", describe(p, b, sizeof b));
    }
    p->pos += n;
    out->type = t;
    return true;
}

static bool parse_value(parser *p, int depth, json_val *out);

static bool parse_container(parser *p, int depth, json_val *out, bool object)
{
    if (depth >= JSON_MAX_DEPTH)
        return fail(p, "nested deeper than %d levels", JSON_MAX_DEPTH);
    char close = object ? '}' : ']';
    size_t base = p->nstack;
    uint64_t count = 0;
    p->pos++; /* the opening bracket */
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == (unsigned char)close) {
        p->pos++;
    } else {
        for (;;) {
            json_val kv[2];
            int nkv = 0;
            skip_ws(p);
            if (object) {
                if (p->pos >= p->len || p->s[p->pos] != '"') {
                    char b[16];
                    return fail(p, "expected a string key, found %s", describe(p, b, sizeof b));
                }
                kv[nkv] = (json_val){ .pos = (uint32_t)p->pos };
                if (!parse_string(p, &kv[nkv++]) || !expect_char(p, ':'))
                    return false;
            }
            /* the value may open containers that use the stack above us */
            if (!parse_value(p, depth + 1, &kv[nkv++]))
                return false;
            if (!LM_GROW(p->d->mem, p->stack, p->stack_cap, p->nstack + 2))
                return nomem(p);
            for (int k = 0; k < nkv; k++)
                p->stack[p->nstack++] = kv[k];
            count++;
            skip_ws(p);
            if (p->pos < p->len && p->s[p->pos] == ',') {
                p->pos++;
                continue;
            }
            if (p->pos < p->len && p->s[p->pos] == (unsigned char)close) {
                p->pos++;
                break;
            }
            char b[16];
            return fail(p, "expected ',' or '%c', found %s", close, describe(p, b, sizeof b));
        }
    }
    size_t nkids = p->nstack - base;
    json_doc *d = p->d;
    if (d->nvals + nkids >= UINT32_MAX)
        return fail(p, "document too large");
    if (!LM_GROW(d->mem, d->vals, d->vals_cap, d->nvals + nkids))
        return nomem(p);
    if (nkids)
        memcpy(d->vals + d->nvals, p->stack + base, nkids * sizeof *d->vals);
    out->type = object ? JSON_OBJECT : JSON_ARRAY;
    out->n = (uint32_t)count;
    out->at = (uint32_t)d->nvals;
    d->nvals += nkids;
    p->nstack = base;
    return true;
}

static bool parse_value(parser *p, int depth, json_val *out)
{
    skip_ws(p);
    *out = (json_val){ .pos = (uint32_t)p->pos };
    if (p->pos >= p->len)
        return fail(p, "unexpected end of the input");
    switch (p->s[p->pos]) {
    case '{': return parse_container(p, depth, out, true);
    case '[': return parse_container(p, depth, out, false);
    case '"': return parse_string(p, out);
    case 't': return parse_literal(p, "true", JSON_TRUE, out);
    case 'f': return parse_literal(p, "false", JSON_FALSE, out);
    case 'n': return parse_literal(p, "null", JSON_NULL, out);
    default:
        if (p->s[p->pos] == '-' || (p->s[p->pos] >= '0' && p->s[p->pos] <= '9'))
            return parse_number(p, out);
        char b[16];
        return fail(p, "unexpected %s", describe(p, b, sizeof b));
    }
}

loom_code json_parse(json_doc *doc, lm_mem *mem, const char *src, size_t len, char *err, size_t errsize)
{
    *doc = (json_doc){ .mem = mem };
    if (errsize)
        err[0] = 0;
    parser p = { .d = doc, .s = (const unsigned char *)src, .len = len, .err = err, .errsize = errsize };
    json_val root;
    if (len >= UINT32_MAX)
        fail(&p, "document too large");
    else if (parse_value(&p, 0, &root)) {
        skip_ws(&p);
        if (p.pos != len) {
            char b[16];
            fail(&p, "%s after the value", describe(&p, b, sizeof b));
        } else if (!LM_GROW(mem, doc->vals, doc->vals_cap, doc->nvals + 1)) {
            nomem(&p);
        } else {
            doc->vals[doc->nvals++] = root;
        }
    }
    lm_free(mem, p.stack, p.stack_cap * sizeof *p.stack);
    if (p.code != LOOM_OK)
        doc->nvals = 0; /* no root: accessors see an empty document */
    return p.code;
}

void json_free(json_doc *doc)
{
    if (!doc || !doc->mem)
        return;
    lm_free(doc->mem, doc->vals, doc->vals_cap * sizeof *doc->vals);
    lm_free(doc->mem, doc->chars, doc->chars_cap);
    *doc = (json_doc){ .mem = doc->mem };
}

/* ------------------------------------------------------------------ */
/* Accessors                                                          */
/* ------------------------------------------------------------------ */

const json_val *json_root(const json_doc *doc) { return doc->nvals ? &doc->vals[doc->nvals - 1] : NULL; }

const char *json_type_name(json_type t)
{
    static const char *const names[] = {
        [JSON_NULL] = "null",       [JSON_FALSE] = "false",    [JSON_TRUE] = "true",
        [JSON_NUMBER] = "a number", [JSON_STRING] = "a string", [JSON_ARRAY] = "an array",
        [JSON_OBJECT] = "an object",
    };
    return (unsigned)t < LM_ARRAY_LEN(names) ? names[t] : "?";
}

const json_val *json_item(const json_doc *doc, const json_val *arr, size_t i)
{
    if (!arr || arr->type != JSON_ARRAY || i >= arr->n)
        return NULL;
    return &doc->vals[arr->at + i];
}

const json_val *json_member(const json_doc *doc, const json_val *obj, size_t i, const char **key)
{
    if (!obj || obj->type != JSON_OBJECT || i >= obj->n)
        return NULL;
    if (key)
        *key = doc->chars + doc->vals[obj->at + 2 * i].at;
    return &doc->vals[obj->at + 2 * i + 1];
}

const json_val *json_get(const json_doc *doc, const json_val *obj, const char *key)
{
    const char *k;
    for (size_t i = 0; obj && obj->type == JSON_OBJECT && i < obj->n; i++) {
        const json_val *v = json_member(doc, obj, i, &k);
        if (strcmp(k, key) == 0)
            return v;
    }
    return NULL;
}

const char *json_text(const json_doc *doc, const json_val *v)
{
    return v && (v->type == JSON_STRING || v->type == JSON_NUMBER) ? doc->chars + v->at : "";
}

bool json_int64(const json_doc *doc, const json_val *v, int64_t *out)
{
    if (!v || v->type != JSON_NUMBER)
        return false;
    const char *s = doc->chars + v->at;
    bool neg = *s == '-';
    s += neg;
    uint64_t x = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false; /* a fraction or an exponent */
        unsigned dgt = (unsigned)(*s - '0');
        if (x > (limit - dgt) / 10)
            return false;
        x = x * 10 + dgt;
    }
    *out = neg ? (int64_t)(0 - x) : (int64_t)x;
    return true;
}

/* ------------------------------------------------------------------ */
/* Writing                                                            */
/* ------------------------------------------------------------------ */

bool json_put(json_buf *b, const char *s, size_t n)
{
    if (b->nomem)
        return false;
    if (n >= SIZE_MAX - b->len || !LM_GROW(b->mem, b->s, b->cap, b->len + n + 1)) {
        b->nomem = true;
        return false;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
    return true;
}

bool json_puts(json_buf *b, const char *s) { return json_put(b, s, strlen(s)); }

bool json_putf(json_buf *b, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->nomem = true;
        return false;
    }
    if ((size_t)n < sizeof small)
        return json_put(b, small, (size_t)n);
    /* longer than the common case: format straight into the buffer */
    if (b->nomem || !LM_GROW(b->mem, b->s, b->cap, b->len + (size_t)n + 1)) {
        b->nomem = true;
        return false;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return true;
}

bool json_put_string(json_buf *b, const char *s, size_t n)
{
    json_put(b, "\"", 1);
    size_t run = 0; /* bytes copied as they are, written in one piece */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        json_put(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': json_put(b, "\\\"", 2); break;
        case '\\': json_put(b, "\\\\", 2); break;
        case '\n': json_put(b, "\\n", 2); break;
        case '\r': json_put(b, "\\r", 2); break;
        case '\t': json_put(b, "\\t", 2); break;
        case '\b': json_put(b, "\\b", 2); break;
        case '\f': json_put(b, "\\f", 2); break;
        default: json_putf(b, "\\u%04x", c); break;
        }
    }
    json_put(b, s + run, n - run);
    return json_put(b, "\"", 1);
}

void json_buf_free(json_buf *b)
{
    if (!b || !b->mem)
        return;
    lm_free(b->mem, b->s, b->cap);
    *b = (json_buf){ .mem = b->mem };
}
