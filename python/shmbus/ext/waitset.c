/*
 * waitset.c - the WaitSet type: block on many subscribers at once
 * (shmbus_waitset_wait, the GIL released, Ctrl-C ends it), or give an event
 * loop one descriptor for all of them.
 */
#include "shmbus_py.h"

static bool ws_open(PyWaitSet *w)
{
	if (w->ws && !w->busy)
		return true;
	py_raise_msg(SHMBUS_ESTATE, NULL, w->ws ? "the wait set is in a wait in another thread"
						: "the wait set is closed");
	return false;
}

static void members_busy(PyWaitSet *w, int d)
{
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(w->members); i++)
		((PySub *)PyList_GET_ITEM(w->members, i))->busy += d;
}

static PyObject *ws_add(PyObject *self, PyObject *arg);

static int ws_init(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"subscribers", NULL};
	PyWaitSet *w = (PyWaitSet *)self;
	PyObject *subs = NULL;
	if (w->ws) {
		PyErr_SetString(PyExc_RuntimeError, "WaitSet.__init__ called twice");
		return -1;
	}
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:WaitSet", kwlist, &subs))
		return -1;
	int rc = shmbus_waitset_create(&w->ws);
	if (rc) {
		py_raise(rc, "waitset");
		return -1;
	}
	w->members = PyList_New(0);
	if (!w->members)
		return -1;
	if (!subs)
		return 0;
	PyObject *it = PyObject_GetIter(subs), *s;
	if (!it)
		return -1;
	while ((s = PyIter_Next(it))) {
		PyObject *r = ws_add(self, s);
		Py_DECREF(s);
		if (!r) {
			Py_DECREF(it);
			return -1;
		}
		Py_DECREF(r);
	}
	Py_DECREF(it);
	return PyErr_Occurred() ? -1 : 0;
}

static PyObject *ws_add(PyObject *self, PyObject *arg)
{
	PyWaitSet *w = (PyWaitSet *)self;
	if (!ws_open(w))
		return NULL;
	if (!PyObject_TypeCheck(arg, &PySub_Type))
		return PyErr_Format(PyExc_TypeError, "a wait set holds Subscribers, not %s",
				    Py_TYPE(arg)->tp_name);
	PySub *s = (PySub *)arg;
	if (!py_sub_open(s))
		return NULL;
	int has = PySequence_Contains(w->members, arg);
	if (has < 0)
		return NULL;
	if (has)
		Py_RETURN_NONE;
	int rc = shmbus_waitset_add(w->ws, s->sub);
	if (rc)
		return py_raise(rc, "waitset_add");
	if (PyList_Append(w->members, arg) < 0) {
		shmbus_waitset_remove(w->ws, s->sub);
		return NULL;
	}
	s->waitsets++;
	Py_RETURN_NONE;
}

static PyObject *ws_remove(PyObject *self, PyObject *arg)
{
	PyWaitSet *w = (PyWaitSet *)self;
	if (!ws_open(w))
		return NULL;
	Py_ssize_t n = PyList_GET_SIZE(w->members);
	for (Py_ssize_t i = 0; i < n; i++) {
		if (PyList_GET_ITEM(w->members, i) != arg)
			continue;
		PySub *s = (PySub *)arg;
		shmbus_waitset_remove(w->ws, s->sub);
		s->waitsets--;
		if (PySequence_DelItem(w->members, i) < 0)
			return NULL;
		Py_RETURN_NONE;
	}
	return py_raise_msg(SHMBUS_EINVAL, NULL, "not a member of this wait set");
}

static void ws_clear(PyWaitSet *w)
{
	if (!w->ws)
		return;
	Py_ssize_t n = w->members ? PyList_GET_SIZE(w->members) : 0;
	for (Py_ssize_t i = 0; i < n; i++) {
		PySub *s = (PySub *)PyList_GET_ITEM(w->members, i);
		shmbus_waitset_remove(w->ws, s->sub);
		s->waitsets--;
	}
	shmbus_waitset_destroy(w->ws);
	w->ws = NULL;
	Py_CLEAR(w->members);
}

static PyObject *ws_close(PyObject *self, PyObject *unused)
{
	PyWaitSet *w = (PyWaitSet *)self;
	(void)unused;
	if (w->busy)
		return py_raise_msg(SHMBUS_ESTATE, NULL,
				    "the wait set is in a wait in another thread");
	ws_clear(w);
	Py_RETURN_NONE;
}

static void ws_dealloc(PyObject *self)
{
	ws_clear((PyWaitSet *)self);
	Py_TYPE(self)->tp_free(self);
}

struct ws_out {
	shmbus_sub *ready[SHMBUS_WAITSET_MAX];
	size_t n;
};

static int ws_wait_fn(void *obj, int64_t timeout_ns, void *out)
{
	struct ws_out *o = out;
	return shmbus_waitset_wait(obj, timeout_ns, o->ready, SHMBUS_WAITSET_MAX, &o->n);
}

static void ws_interrupt_fn(void *obj)
{
	shmbus_waitset_interrupt(obj);
}

static PyObject *ws_wait(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"timeout", NULL};
	PyWaitSet *w = (PyWaitSet *)self;
	PyObject *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:wait", kwlist, &timeout) || !ws_open(w))
		return NULL;
	int64_t t = py_timeout_ns(timeout);
	if (t == -2)
		return NULL;
	struct ws_out out = {.n = 0};
	struct py_wait pw = {ws_wait_fn, ws_interrupt_fn, w->ws, &out, &w->intr_stale};
	w->busy = true;
	members_busy(w, 1);
	int rc = py_wait_run(&pw, t);
	members_busy(w, -1);
	w->busy = false;
	if (rc == PY_WAIT_RAISED)
		return NULL;
	if (rc == SHMBUS_ETIMEDOUT)
		return PyList_New(0);
	if (rc)
		return py_raise(rc, "waitset_wait");
	PyObject *ready = PyList_New(0);
	Py_ssize_t n = PyList_GET_SIZE(w->members);
	for (size_t k = 0; ready && k < out.n; k++) {
		for (Py_ssize_t i = 0; i < n; i++) {
			PyObject *m = PyList_GET_ITEM(w->members, i);
			if (((PySub *)m)->sub == out.ready[k] && PyList_Append(ready, m) < 0)
				Py_CLEAR(ready);
		}
	}
	return ready;
}

static PyObject *ws_interrupt(PyObject *self, PyObject *unused)
{
	PyWaitSet *w = (PyWaitSet *)self;
	(void)unused;
	if (w->ws)
		shmbus_waitset_interrupt(w->ws);
	Py_RETURN_NONE;
}

static PyObject *ws_fileno(PyObject *self, PyObject *unused)
{
	PyWaitSet *w = (PyWaitSet *)self;
	int fd;
	(void)unused;
	if (!ws_open(w))
		return NULL;
	int rc = shmbus_waitset_fd(w->ws, &fd);
	if (rc)
		return py_raise(rc, "waitset_fd");
	return PyLong_FromLong(fd);
}

static PyObject *ws_members(PyObject *self, void *closure)
{
	PyWaitSet *w = (PyWaitSet *)self;
	(void)closure;
	return w->members ? PyList_GetSlice(w->members, 0, PyList_GET_SIZE(w->members))
			  : PyList_New(0);
}

static PyMethodDef ws_methods[] = {
	{"add", ws_add, METH_O, "Add a subscriber."},
	{"remove", ws_remove, METH_O, "Remove a subscriber."},
	{"wait", (PyCFunction)(void (*)(void))ws_wait, METH_VARARGS | METH_KEYWORDS,
	 "wait(timeout=None) -> [subscribers with something to take] ([] on timeout).\n"
	 "Blocks with the GIL released; Ctrl-C ends it (in the main thread)."},
	{"interrupt", ws_interrupt, METH_NOARGS,
	 "Make the wait in progress (or the next one) raise Interrupted; any thread."},
	{"fileno", ws_fileno, METH_NOARGS,
	 "A descriptor readable while any member has something to take."},
	{"close", ws_close, METH_NOARGS, "Remove every member and free the set."},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef ws_getset[] = {
	{"members", ws_members, NULL, "the subscribers in the set", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject PyWaitSet_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmbus._shmbus.WaitSet",
	.tp_basicsize = sizeof(PyWaitSet),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.tp_doc = "WaitSet(subscribers=()): wait on many subscribers at once.",
	.tp_new = PyType_GenericNew,
	.tp_init = ws_init,
	.tp_dealloc = ws_dealloc,
	.tp_methods = ws_methods,
	.tp_getset = ws_getset,
};
