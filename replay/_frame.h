/* What replay/_frame.c (the frame reader) and replay/_in_place.c (a template read in place)
 * share: a reader over a frame's bytes, every length checked against its end first, and the
 * fields that often repeat from one template to the next. */

#ifndef REPLAY_FRAME_H
#define REPLAY_FRAME_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define HAS_READ 1     /* the flags byte (replay.frame.HAS_READ, HEAD) */
#define HEAD 2
#define TEMPLATE_FIELDS 13 /* replay.template.Template's fields, in order: */
enum {
    T_ENDPOINT, T_OFFSET_NS, T_RECORDED_MS, T_FMT, T_SLOTS, T_STAMPS, T_READS, T_BODY,
    T_ACK_PREFIX, T_ACK_SUFFIX, T_READ_FALLBACK, T_HAS_READ, T_HEAD
};
#define PART_FIELDS 4 /* replay.template.Part's: fmt, slots, stamps, reads */

/* The types the reader makes (_frame.configure): Template, Part, TimelineEntry. */
extern PyTypeObject *template_type, *part_type, *entry_type;

typedef struct {
    const char *start, *at, *end;
} Reader;

static inline int need(Reader *r, Py_ssize_t size) {
    if (size < 0 || r->end - r->at < size) {
        PyErr_Format(PyExc_ValueError, "cut short: %zd bytes wanted at byte %zd of %zd", size,
                     (Py_ssize_t)(r->at - r->start), (Py_ssize_t)(r->end - r->start));
        return -1;
    }
    return 0;
}

static inline uint32_t u32_at(Reader *r) {
    uint32_t value;
    memcpy(&value, r->at, 4);
    r->at += 4;
    return value;
}

static inline int64_t i64_at(Reader *r) {
    int64_t value;
    memcpy(&value, r->at, 8);
    r->at += 8;
    return value;
}

/* A `bytes` (length, then its bytes) as its start and length. */
static inline const char *span_at(Reader *r, Py_ssize_t *length) {
    if (need(r, 4) < 0)
        return NULL;
    *length = (Py_ssize_t)u32_at(r);
    if (need(r, *length) < 0)
        return NULL;
    const char *start = r->at;
    r->at += *length;
    return start;
}

static inline PyObject *bytes_at(Reader *r) {
    Py_ssize_t length;
    const char *start = span_at(r, &length);
    return start ? PyBytes_FromStringAndSize(start, length) : NULL;
}

/* A `bytes` that is often the same from one template to the next (an ingestion corpus's
 * trace id prefix and suffix): `*last` again when its bytes are equal, else a new one kept
 * in `*last`. */
static inline PyObject *repeated_bytes_at(Reader *r, PyObject **last) {
    Py_ssize_t length;
    const char *start = span_at(r, &length);
    if (start == NULL)
        return NULL;
    if (*last == NULL || PyBytes_GET_SIZE(*last) != length ||
        memcmp(PyBytes_AS_STRING(*last), start, length) != 0) {
        PyObject *made = PyBytes_FromStringAndSize(start, length);
        if (made == NULL)
            return NULL;
        Py_XSETREF(*last, made);
    }
    return Py_NewRef(*last);
}

/* The endpoint's str, reusing the last one when its bytes are the same. */
static inline PyObject *endpoint_at(Reader *r, PyObject **endpoint) {
    Py_ssize_t length;
    const char *name = span_at(r, &length);
    if (name == NULL)
        return NULL;
    /* (an ASCII str's characters are its UTF-8) */
    if (*endpoint == NULL || !PyUnicode_IS_ASCII(*endpoint) ||
        PyUnicode_GET_LENGTH(*endpoint) != length ||
        memcmp(PyUnicode_DATA(*endpoint), name, length) != 0) {
        PyObject *decoded = PyUnicode_DecodeUTF8(name, length, "strict");
        if (decoded == NULL)
            return NULL;
        Py_XSETREF(*endpoint, decoded);
    }
    return Py_NewRef(*endpoint);
}

/* The last value of each field that often repeats from one template to the next. */
typedef struct {
    PyObject *endpoint, *ack_prefix, *ack_suffix, *read_fallback;
} Repeats;

static inline void forget(Repeats *last) {
    Py_CLEAR(last->endpoint);
    Py_CLEAR(last->ack_prefix);
    Py_CLEAR(last->ack_suffix);
    Py_CLEAR(last->read_fallback);
}

/* One Template read from `r` (replay/_frame.c); `last` keeps the fields that repeat. */
PyObject *template_at(Reader *r, Repeats *last);

/* A template read in place (replay/_in_place.c): its spans point into `frame`, a bytes it
 * keeps. NULL with an exception for bytes that are not a template. */
extern PyTypeObject InPlaceTemplate;
PyObject *in_place_at(Reader *r, Repeats *last, PyObject *frame);
/* Stamps.iso, the function, whose form the in-place render writes itself (configure). */
extern PyObject *in_place_iso;

#endif
