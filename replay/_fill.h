/* The rendering core of replay/template.py's `filled`, shared by replay/_fill.c (a Template's
 * parts) and replay/_in_place.c (a template read in place from a spool frame): a part's
 * format string with each hole given the serial, a moved timestamp in Stamps.iso's form, or
 * the read target. `fill_part` answers NULL without an exception for anything it leaves to
 * the Python reference (a hole out of range, a year outside 1000-9999, an overflow, a
 * format with another conversion or the wrong number of holes). Included, not linked: each
 * extension keeps its own copy and its own last second. */

#ifndef REPLAY_FILL_H
#define REPLAY_FILL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define ISO_BYTES 24   /* YYYY-MM-DDTHH:MM:SS.mmmZ */
#define ON_STACK 64    /* holes, or stamps, kept on the C stack; more are allocated */


/* A civil date from days since 1970-01-01 (the proleptic Gregorian calendar, as Python's
 * datetime; H. Hinnant's civil_from_days). */
static void civil(int64_t days, int64_t *year, int *month, int *day) {
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;                                   /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                    /* [0, 11] */
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = yoe + era * 400 + (*month <= 2);
}

static void digits(char *at, int64_t value, int width) {
    for (int k = width - 1; k >= 0; k--) {
        at[k] = (char)('0' + value % 10);
        value /= 10;
    }
}

/* The last second written, and its first 20 bytes (a request's stamps are close). */
static int64_t last_second = INT64_MIN;
static char last_prefix[20];

/* Epoch ms as Stamps.iso writes it, into out[0..24); 0 for a year it leaves to Python. */
static int iso_of(int64_t ms, char *out) {
    int64_t second = ms / 1000, milli = ms % 1000;
    if (milli < 0) {
        milli += 1000;
        second -= 1;
    }
    digits(out + 20, milli, 3);
    out[23] = 'Z';
    if (second == last_second) {
        memcpy(out, last_prefix, 20);
        return 1;
    }
    int64_t days = second / 86400, in_day = second % 86400;
    if (in_day < 0) {
        in_day += 86400;
        days -= 1;
    }
    int64_t year;
    int month, day;
    civil(days, &year, &month, &day);
    if (year < 1000 || year > 9999)
        return 0;
    digits(out, year, 4);
    out[4] = '-';
    digits(out + 5, month, 2);
    out[7] = '-';
    digits(out + 8, day, 2);
    out[10] = 'T';
    digits(out + 11, in_day / 3600, 2);
    out[13] = ':';
    digits(out + 14, in_day / 60 % 60, 2);
    out[16] = ':';
    digits(out + 17, in_day % 60, 2);
    out[19] = '.';
    memcpy(last_prefix, out, 20);
    last_second = second;
    return 1;
}

/* `fmt` with hole k replaced by args[k] (its bytes and length) and %% by %: NULL without an
 * exception when the format is not one of `slots` holes this reads. */
static PyObject *formatted(const char *fmt, Py_ssize_t fmt_length, Py_ssize_t slots,
                           const char **args, const Py_ssize_t *lengths) {
    Py_ssize_t size = fmt_length - 2 * slots;
    for (Py_ssize_t k = 0; k < slots; k++)
        size += lengths[k];
    if (size < 0)
        return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL)
        return NULL;
    char *to = PyBytes_AS_STRING(out), *to_end = to + size;
    const char *from = fmt, *end = fmt + fmt_length;
    Py_ssize_t hole = 0;
    for (;;) {
        const char *mark = memchr(from, '%', end - from);
        const char *stop = mark != NULL ? mark : end;
        if (stop - from > to_end - to)
            goto not_ours;
        memcpy(to, from, stop - from);
        to += stop - from;
        if (mark == NULL)
            break;
        if (mark + 1 == end)
            goto not_ours;
        if (mark[1] == 's') {
            if (hole == slots || lengths[hole] > to_end - to)
                goto not_ours;
            memcpy(to, args[hole], lengths[hole]);
            to += lengths[hole];
            hole++;
        } else if (mark[1] == '%') {
            if (to == to_end)
                goto not_ours;
            *to++ = '%';
        } else {
            goto not_ours;
        }
        from = mark + 2;
    }
    if (hole != slots)
        goto not_ours;
    if (to != to_end && _PyBytes_Resize(&out, to - PyBytes_AS_STRING(out)) < 0)
        return NULL;
    return out;
not_ours:
    Py_DECREF(out);
    return NULL;
}

/* A part as spans of bytes: its format string, its stamps as (hole, ms) i64 pairs, and its
 * read holes, either a tuple of ints (`reads`) or u32 numbers (`reads_u32`). */
typedef struct {
    const char *fmt;
    Py_ssize_t fmt_length, slots;
    const char *pairs;
    Py_ssize_t stamps;
    PyObject *reads;       /* a tuple, or NULL when the holes are `reads_u32` */
    const char *reads_u32;
    Py_ssize_t reading;
} FillPart;

/* One request's bytes of `part`: a new bytes, NULL with an exception on an error, or NULL
 * without one for what the reference answers. `overflow`: delta_ms did not fit 64 bits. */
static PyObject *fill_part(const FillPart *part, const char *serial, Py_ssize_t serial_length,
                           int64_t delta, int overflow, const char *read,
                           Py_ssize_t read_length) {
    Py_ssize_t slots = part->slots, count = part->stamps;
    if (slots < 0 || (overflow && count))
        return NULL;
    const char *stack_args[ON_STACK];
    Py_ssize_t stack_lengths[ON_STACK];
    char stack_isos[ON_STACK * ISO_BYTES];
    const char **hole_args = stack_args;
    Py_ssize_t *lengths = stack_lengths;
    char *isos = stack_isos;
    PyObject *out = NULL;
    if (slots > ON_STACK) {
        hole_args = PyMem_Malloc(slots * sizeof *hole_args);
        lengths = PyMem_Malloc(slots * sizeof *lengths);
    }
    if (count > ON_STACK)
        isos = PyMem_Malloc(count * ISO_BYTES);
    if (hole_args == NULL || lengths == NULL || isos == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < slots; k++) {
        hole_args[k] = serial;
        lengths[k] = serial_length;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        int64_t hole, ms, moved;
        memcpy(&hole, part->pairs + 16 * k, 8);
        memcpy(&ms, part->pairs + 16 * k + 8, 8);
        if (hole < 0 || hole >= slots || __builtin_add_overflow(ms, delta, &moved) ||
            !iso_of(moved, isos + k * ISO_BYTES))
            goto done;
        hole_args[hole] = isos + k * ISO_BYTES;
        lengths[hole] = ISO_BYTES;
    }
    for (Py_ssize_t k = 0; k < part->reading; k++) {
        Py_ssize_t hole;
        if (part->reads != NULL) {
            PyObject *item = PyTuple_GET_ITEM(part->reads, k);
            hole = PyLong_CheckExact(item) ? PyLong_AsSsize_t(item) : -1;
            if (hole == -1 && PyErr_Occurred())
                PyErr_Clear();
        } else {
            uint32_t value;
            memcpy(&value, part->reads_u32 + 4 * k, 4);
            hole = (Py_ssize_t)value;
        }
        if (hole < 0 || hole >= slots)
            goto done;
        hole_args[hole] = read;
        lengths[hole] = read_length;
    }
    out = formatted(part->fmt, part->fmt_length, slots, hole_args, lengths);
done:
    if (hole_args != stack_args)
        PyMem_Free(hole_args);
    if (lengths != stack_lengths)
        PyMem_Free(lengths);
    if (isos != stack_isos)
        PyMem_Free(isos);
    return out;
}

/* Whether `iso` is `stamps_iso` (Stamps.iso, the function) bound to a Stamps. */
static int is_bound(PyObject *iso, PyObject *stamps_iso) {
    return stamps_iso != NULL && PyMethod_Check(iso) && PyMethod_GET_FUNCTION(iso) == stamps_iso;
}

#endif
