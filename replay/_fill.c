/* replay._fill: one request's bytes from its template, exactly as replay/template.py's
 * reference `filled` makes them, without a step in Python.
 *
 * A template's format string holds `%s` for each hole and `%%` for a literal `%`. Every
 * hole takes the request's serial, but those in `stamps` (a timestamp moved by delta_ms)
 * and those in `reads` (the trace a read names). Given `Stamps.iso`, a timestamp is written
 * here in its form (2026-11-30T01:05:00.123Z) for the years 1000 to 9999. Anything else
 * (another iso, another type, a hole out of range, a year outside those, a format with
 * another conversion or the wrong number of holes) is handed to the reference, which gives
 * the answer or raises the error Python's own formatting does. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define ISO_BYTES 24   /* YYYY-MM-DDTHH:MM:SS.mmmZ */
#define ON_STACK 64    /* holes, or stamps, kept on the C stack; more are allocated */

static PyObject *reference; /* replay.template.filled */
static PyObject *stamps_iso; /* replay.template.Stamps.iso, the function */

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

/* Whether `iso` is Stamps.iso, bound to a Stamps. */
static int is_stamps_iso(PyObject *iso) {
    return PyMethod_Check(iso) && PyMethod_GET_FUNCTION(iso) == stamps_iso;
}

/* `fmt` with hole k replaced by args[k] (its bytes and length) and %% by %: NULL without an
 * exception when the format is not one of `slots` holes this reads. */
static PyObject *formatted(PyObject *fmt, Py_ssize_t slots, const char **args,
                           const Py_ssize_t *lengths) {
    Py_ssize_t size = PyBytes_GET_SIZE(fmt) - 2 * slots;
    for (Py_ssize_t k = 0; k < slots; k++)
        size += lengths[k];
    if (size < 0)
        return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL)
        return NULL;
    char *to = PyBytes_AS_STRING(out), *to_end = to + size;
    const char *from = PyBytes_AS_STRING(fmt), *end = from + PyBytes_GET_SIZE(fmt);
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

static PyObject *by_reference(PyObject *const *args, Py_ssize_t nargs) {
    return PyObject_Vectorcall(reference, args, nargs, NULL);
}

/* fill(fmt, slots, stamps, reads, serial, delta_ms, read, iso): see replay.template. */
static PyObject *fill(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (reference == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "replay._fill used before configure()");
        return NULL;
    }
    if (nargs != 8)
        return by_reference(args, nargs);
    PyObject *fmt = args[0], *stamps = args[2], *reads = args[3], *serial = args[4],
             *read = args[6];
    if (!PyBytes_CheckExact(fmt) || !PyLong_CheckExact(args[1]) ||
        !PyBytes_CheckExact(stamps) || PyBytes_GET_SIZE(stamps) % 16 != 0 ||
        !PyTuple_CheckExact(reads) || !PyBytes_CheckExact(serial) ||
        !PyBytes_CheckExact(read) || !PyLong_CheckExact(args[5]) || !is_stamps_iso(args[7]))
        return by_reference(args, nargs);
    int overflow;
    Py_ssize_t slots = PyLong_AsSsize_t(args[1]);
    long long delta = PyLong_AsLongLongAndOverflow(args[5], &overflow);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return by_reference(args, nargs);
    }
    Py_ssize_t count = PyBytes_GET_SIZE(stamps) / 16, reading = PyTuple_GET_SIZE(reads);
    if (slots < 0 || (overflow && count))
        return by_reference(args, nargs);

    const char *stack_args[ON_STACK];
    Py_ssize_t stack_lengths[ON_STACK];
    char stack_isos[ON_STACK * ISO_BYTES];
    const char **hole_args = stack_args;
    Py_ssize_t *lengths = stack_lengths;
    char *isos = stack_isos;
    PyObject *out = NULL; /* NULL and no exception: handed to the reference */
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
        hole_args[k] = PyBytes_AS_STRING(serial);
        lengths[k] = PyBytes_GET_SIZE(serial);
    }
    const char *pairs = PyBytes_AS_STRING(stamps);
    for (Py_ssize_t k = 0; k < count; k++) {
        int64_t hole, ms, moved;
        memcpy(&hole, pairs + 16 * k, 8);
        memcpy(&ms, pairs + 16 * k + 8, 8);
        if (hole < 0 || hole >= slots || __builtin_add_overflow(ms, (int64_t)delta, &moved) ||
            !iso_of(moved, isos + k * ISO_BYTES))
            goto done;
        hole_args[hole] = isos + k * ISO_BYTES;
        lengths[hole] = ISO_BYTES;
    }
    for (Py_ssize_t k = 0; k < reading; k++) {
        PyObject *item = PyTuple_GET_ITEM(reads, k);
        Py_ssize_t hole = PyLong_CheckExact(item) ? PyLong_AsSsize_t(item) : -1;
        if (hole < 0 || hole >= slots) {
            PyErr_Clear();
            goto done;
        }
        hole_args[hole] = PyBytes_AS_STRING(read);
        lengths[hole] = PyBytes_GET_SIZE(read);
    }
    out = formatted(fmt, slots, hole_args, lengths);
done:
    if (hole_args != stack_args)
        PyMem_Free(hole_args);
    if (lengths != stack_lengths)
        PyMem_Free(lengths);
    if (isos != stack_isos)
        PyMem_Free(isos);
    if (out != NULL || PyErr_Occurred())
        return out;
    return by_reference(args, nargs);
}

/* configure(filled, Stamps.iso): the reference, and the iso whose form this writes. */
static PyObject *configure(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyCallable_Check(args[0]) || !PyFunction_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "configure(filled, Stamps.iso)");
        return NULL;
    }
    Py_XSETREF(reference, Py_NewRef(args[0]));
    Py_XSETREF(stamps_iso, Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"fill", (PyCFunction)(void (*)(void))fill, METH_FASTCALL,
     "One request's bytes from a template's format string: see replay.template.filled."},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_FASTCALL,
     "configure(filled, Stamps.iso): the reference, and the iso whose form fill writes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "replay._fill",
    "One request's bytes from its template, in C (see replay.template).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fill(void) { return PyModule_Create(&module_def); }
