/* replay._fill: one request's bytes from its template, exactly as replay/template.py's
 * reference `filled` makes them, without a step in Python.
 *
 * A template's format string holds `%s` for each hole and `%%` for a literal `%`. Every
 * hole takes the request's serial, but those in `stamps` (a timestamp moved by delta_ms)
 * and those in `reads` (the trace a read names). Given `Stamps.iso`, a timestamp is written
 * here in its form (2026-11-30T01:05:00.123Z) for the years 1000 to 9999. Anything else
 * (another iso, another type, a hole out of range, a year outside those, a format with
 * another conversion or the wrong number of holes) is handed to the reference, which gives
 * the answer or raises the error Python's own formatting does. The rendering itself is
 * replay/_fill.h's, shared with replay/_in_place.c. */

#include "_fill.h"

static PyObject *reference; /* replay.template.filled */
static PyObject *stamps_iso; /* replay.template.Stamps.iso, the function */

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
        !PyBytes_CheckExact(read) || !PyLong_CheckExact(args[5]) ||
        !is_bound(args[7], stamps_iso))
        return by_reference(args, nargs);
    int overflow;
    Py_ssize_t slots = PyLong_AsSsize_t(args[1]);
    long long delta = PyLong_AsLongLongAndOverflow(args[5], &overflow);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return by_reference(args, nargs);
    }
    FillPart part = {
        PyBytes_AS_STRING(fmt), PyBytes_GET_SIZE(fmt), slots, PyBytes_AS_STRING(stamps),
        PyBytes_GET_SIZE(stamps) / 16, reads, NULL, PyTuple_GET_SIZE(reads),
    };
    PyObject *out = fill_part(&part, PyBytes_AS_STRING(serial), PyBytes_GET_SIZE(serial),
                              (int64_t)delta, overflow, PyBytes_AS_STRING(read),
                              PyBytes_GET_SIZE(read));
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
