/* JSON read over bytes, for capture/_spanwalk.c: character classes, strict UTF-8, and
 * JSON's strings and numbers, each read in place (nothing decoded). Each reader accepts a
 * subset of what json.loads accepts, never more. */

#ifndef CAPTURE_JSON_BYTES_H
#define CAPTURE_JSON_BYTES_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_INT_DIGITS 600 /* json.loads refuses integers past sys.get_int_max_str_digits(),
                            * which is never below 640 (or 0: no limit) */

static inline int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The first byte at or after p that is not JSON's whitespace (n at the end). */
static inline Py_ssize_t skip_space(const unsigned char *b, Py_ssize_t n, Py_ssize_t p) {
    while (p < n && is_space(b[p]))
        p++;
    return p;
}

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static inline int is_hex(unsigned char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static inline int is_alnum(unsigned char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The length of the strict UTF-8 sequence at s (encoded surrogates refused), 0 if none. */
static Py_ssize_t utf8_length(const unsigned char *s, const unsigned char *end) {
    unsigned char c = s[0];
    if (c >= 0xC2 && c <= 0xDF)
        return end - s >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (end - s < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (end - s < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
            (s[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Whether any of 8 bytes may end a plain run of a string: a quote, a backslash, a control
 * character or a byte of a multi-byte character (a byte is "less than 0x20" by the
 * borrow trick, exact for bytes below 0x80; the high bits catch the rest). */
static inline int special8(const unsigned char *s) {
    uint64_t v;
    memcpy(&v, s, 8);
    uint64_t quote = v ^ (ONES * '"'), backslash = v ^ (ONES * '\\');
    uint64_t found = ((quote - ONES) & ~quote) | ((backslash - ONES) & ~backslash) |
                     ((v - ONES * 0x20) & ~v) | v;
    return (found & HIGHS) != 0;
}

/* Reads the string whose opening quote is at *p; on success *p is past its closing quote,
 * *escaped says whether it holds a backslash. 0 when it is not a valid JSON string. */
static int read_string(const unsigned char *b, Py_ssize_t n, Py_ssize_t *p, int *escaped) {
    Py_ssize_t i = *p + 1;
    *escaped = 0;
    while (i < n) {
        while (i + 8 <= n && !special8(b + i))
            i += 8;
        if (i >= n)
            break;
        unsigned char c = b[i];
        if (c == '"') {
            *p = i + 1;
            return 1;
        }
        if (c < 0x20)
            return 0;
        if (c == '\\') {
            *escaped = 1;
            if (i + 1 >= n)
                return 0;
            c = b[i + 1];
            if (c == 'u') {
                if (i + 5 >= n || !is_hex(b[i + 2]) || !is_hex(b[i + 3]) || !is_hex(b[i + 4]) ||
                    !is_hex(b[i + 5]))
                    return 0;
                i += 6;
            } else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
                       c == 'r' || c == 't') {
                i += 2;
            } else {
                return 0;
            }
        } else if (c < 0x80) {
            i++;
        } else {
            Py_ssize_t length = utf8_length(b + i, b + n);
            if (length == 0)
                return 0;
            i += length;
        }
    }
    return 0;
}

/* Reads the number at *p (JSON's grammar); 0 when it is not one, or is an integer too long
 * for json.loads. */
static int read_number(const unsigned char *b, Py_ssize_t n, Py_ssize_t *p) {
    Py_ssize_t i = *p, digits;
    int integer = 1;
    if (i < n && b[i] == '-')
        i++;
    if (i >= n || !is_digit(b[i]))
        return 0;
    if (b[i] == '0') {
        i++;
        digits = 1;
    } else {
        Py_ssize_t first = i;
        while (i < n && is_digit(b[i]))
            i++;
        digits = i - first;
    }
    if (i < n && b[i] == '.') {
        integer = 0;
        i++;
        if (i >= n || !is_digit(b[i]))
            return 0;
        while (i < n && is_digit(b[i]))
            i++;
    }
    if (i < n && (b[i] == 'e' || b[i] == 'E')) {
        integer = 0;
        i++;
        if (i < n && (b[i] == '+' || b[i] == '-'))
            i++;
        if (i >= n || !is_digit(b[i]))
            return 0;
        while (i < n && is_digit(b[i]))
            i++;
    }
    if (integer && digits > MAX_INT_DIGITS)
        return 0;
    *p = i;
    return 1;
}

#endif
