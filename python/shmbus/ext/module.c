/*
 * module.c - the _shmbus module: its exceptions (one class per SHMBUS_E*
 * code), the MsgInfo type, timeouts, and waits that Ctrl-C ends.
 */
#include "shmbus_py.h"

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>

/* ------------------------------------------------------------ errors */

static PyObject *error_base;   /* shmbus.Error */
static PyObject *error_by_code[32];

struct error_name {
	int code;
	const char *name;
	PyObject **builtin_base; /* also derives from this builtin, or NULL */
	const char *doc;
};

static const struct error_name error_names[] = {
	{SHMBUS_EINVAL, "InvalidArgument", &PyExc_ValueError, "an argument is invalid"},
	{SHMBUS_ENOMEM, "NoMemory", &PyExc_MemoryError, "out of memory or /dev/shm space"},
	{SHMBUS_EAGAIN, "NoMessage", NULL, "nothing to take yet"},
	{SHMBUS_ETIMEDOUT, "Timeout", &PyExc_TimeoutError, "the wait timed out"},
	{SHMBUS_EMSGSIZE, "MessageTooLarge", NULL, "larger than the topic's maximum"},
	{SHMBUS_ETYPE, "TypeMismatch", NULL, "the topic has another message type"},
	{SHMBUS_ENOTOPIC, "NoTopic", NULL, "no such topic, or it was removed"},
	{SHMBUS_ENOBROKER, "NoBroker", &PyExc_ConnectionError,
	 "no broker answers for the bus and none could be started"},
	{SHMBUS_EBROKER, "BrokerError", &PyExc_ConnectionError,
	 "the broker broke the protocol or went away"},
	{SHMBUS_EVERSION, "VersionMismatch", NULL, "incompatible layout or protocol"},
	{SHMBUS_ECORRUPT, "Corrupt", NULL, "a segment header is truncated or corrupt"},
	{SHMBUS_EPERM, "PermissionDenied", &PyExc_PermissionError, "the broker refused"},
	{SHMBUS_ELAYOUT, "LayoutMismatch", NULL, "the topic's layout is smaller than asked"},
	{SHMBUS_ELIMIT, "LimitReached", NULL, "a table or quota is full"},
	{SHMBUS_ENOTSUP, "NotSupported", NULL, "the kernel lacks a needed feature"},
	{SHMBUS_EBUSY, "Busy", NULL, "every slot is held by an open loan"},
	{SHMBUS_ESTATE, "StateError", NULL, "call out of order"},
	{SHMBUS_ESYS, "SystemCallError", &PyExc_OSError, "a system call failed"},
	{SHMBUS_ELAPPED, "Lapped", NULL, "the message was overwritten while held"},
	{SHMBUS_ENAME, "InvalidName", &PyExc_ValueError, "a bus or topic name is not valid"},
	{SHMBUS_EBADMSG, "BadMessage", NULL, "a message does not decode as its type"},
	{SHMBUS_EINTR, "Interrupted", NULL, "the wait was interrupted"},
};

PyObject *py_raise(int rc, const char *what)
{
	int idx = -rc;
	PyObject *cls = idx > 0 && idx < (int)(sizeof(error_by_code) / sizeof(error_by_code[0]))
				? error_by_code[idx]
				: NULL;
	const char *msg = shmbus_errmsg();

	if (!cls)
		cls = error_base;
	if (!msg || !msg[0])
		msg = shmbus_strerror(rc);
	PyObject *exc = PyObject_CallFunction(cls, "s", msg);
	if (!exc)
		return NULL;
	PyObject *code = PyLong_FromLong(rc);
	PyObject *text = PyUnicode_FromString(msg);
	PyObject *call = PyUnicode_FromString(what);
	if (code && text && call && PyObject_SetAttrString(exc, "code", code) == 0 &&
	    PyObject_SetAttrString(exc, "errmsg", text) == 0 &&
	    PyObject_SetAttrString(exc, "call", call) == 0)
		PyErr_SetObject(cls, exc);
	Py_XDECREF(code);
	Py_XDECREF(text);
	Py_XDECREF(call);
	Py_DECREF(exc);
	return NULL;
}

PyObject *py_raise_msg(int rc, PyObject *cls, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	int idx = -rc;
	if (!cls)
		cls = idx > 0 && idx < (int)(sizeof(error_by_code) / sizeof(error_by_code[0]))
			      ? error_by_code[idx]
			      : error_base;
	PyObject *exc = PyObject_CallFunction(cls, "s", text);
	if (!exc)
		return NULL;
	PyObject *code = PyLong_FromLong(rc);
	PyObject *msg = PyUnicode_FromString(text);
	if (code && msg && PyObject_SetAttrString(exc, "code", code) == 0 &&
	    PyObject_SetAttrString(exc, "errmsg", msg) == 0)
		PyErr_SetObject(cls, exc);
	Py_XDECREF(code);
	Py_XDECREF(msg);
	Py_DECREF(exc);
	return NULL;
}

PyObject *py_exc_buffer_in_use;

int py_errors_init(PyObject *module)
{
	error_base = PyErr_NewExceptionWithDoc(
		"shmbus.Error",
		"A shmbus call failed: `code` is the SHMBUS_E* code (negative), `errmsg` "
		"the library's text for it, `call` what was called.",
		NULL, NULL);
	if (!error_base || PyModule_AddObjectRef(module, "Error", error_base) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(error_names) / sizeof(error_names[0]); i++) {
		const struct error_name *e = &error_names[i];
		char qual[64];
		PyObject *bases = e->builtin_base ? PyTuple_Pack(2, error_base, *e->builtin_base)
						  : PyTuple_Pack(1, error_base);
		if (!bases)
			return -1;
		snprintf(qual, sizeof(qual), "shmbus.%s", e->name);
		PyObject *cls = PyErr_NewExceptionWithDoc(qual, e->doc, bases, NULL);
		Py_DECREF(bases);
		if (!cls)
			return -1;
		PyObject *code = PyLong_FromLong(e->code);
		if (!code || PyObject_SetAttrString(cls, "code", code) < 0) {
			Py_XDECREF(code);
			Py_DECREF(cls);
			return -1;
		}
		Py_DECREF(code);
		error_by_code[-e->code] = cls;
		if (PyModule_AddObjectRef(module, e->name, cls) < 0)
			return -1;
	}
	PyObject *bases = PyTuple_Pack(2, error_by_code[-SHMBUS_ESTATE], PyExc_BufferError);
	if (!bases)
		return -1;
	py_exc_buffer_in_use = PyErr_NewExceptionWithDoc(
		"shmbus.BufferInUse",
		"A view or loan ended while buffers over its slot (an ndarray, a memoryview "
		"slice) were still alive: the slot stays held until they are deleted.",
		bases, NULL);
	Py_DECREF(bases);
	if (!py_exc_buffer_in_use ||
	    PyModule_AddObjectRef(module, "BufferInUse", py_exc_buffer_in_use) < 0)
		return -1;
	return 0;
}

/* ---------------------------------------------------------- msg info */

typedef struct {
	PyObject_HEAD
	struct shmbus_msg_info info;
} PyMsgInfo;

PyObject *py_msginfo_new(const struct shmbus_msg_info *info)
{
	PyMsgInfo *o = PyObject_New(PyMsgInfo, &PyMsgInfo_Type);
	if (o)
		o->info = *info;
	return (PyObject *)o;
}

static PyObject *msginfo_publish_time(PyObject *self, void *closure)
{
	(void)closure;
	return PyFloat_FromDouble((double)((PyMsgInfo *)self)->info.publish_ns / 1e9);
}

static PyObject *msginfo_repr(PyObject *self)
{
	const struct shmbus_msg_info *i = &((PyMsgInfo *)self)->info;
	return PyUnicode_FromFormat("MsgInfo(seq=%llu, publish_ns=%lld, publisher=%u, size=%zu, "
				    "lost=%llu)",
				    (unsigned long long)i->seq, (long long)i->publish_ns,
				    i->publisher_id, i->size, (unsigned long long)i->lost);
}

static PyMemberDef msginfo_members[] = {
	{"seq", T_ULONGLONG, offsetof(PyMsgInfo, info.seq), READONLY,
	 "sequence number on the topic"},
	{"publish_ns", T_LONGLONG, offsetof(PyMsgInfo, info.publish_ns), READONLY,
	 "publish time, ns since the epoch (CLOCK_REALTIME)"},
	{"publisher", T_UINT, offsetof(PyMsgInfo, info.publisher_id), READONLY,
	 "id the broker gave the publisher"},
	{"size", T_PYSSIZET, offsetof(PyMsgInfo, info.size), READONLY, "payload bytes"},
	{"lost", T_ULONGLONG, offsetof(PyMsgInfo, info.lost), READONLY,
	 "messages lost just before this one"},
	{NULL, 0, 0, 0, NULL},
};

static PyGetSetDef msginfo_getset[] = {
	{"publish_time", msginfo_publish_time, NULL, "publish time in seconds (float)", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject PyMsgInfo_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmbus.MsgInfo",
	.tp_basicsize = sizeof(PyMsgInfo),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "What a taken message was: seq, publish_ns (publish_time in s), "
		  "publisher, size, lost.",
	.tp_repr = msginfo_repr,
	.tp_members = msginfo_members,
	.tp_getset = msginfo_getset,
};

/* ---------------------------------------------------------- timeouts */

int64_t py_timeout_ns(PyObject *timeout)
{
	if (!timeout || timeout == Py_None)
		return -1;
	double s = PyFloat_AsDouble(timeout);
	if (s == -1.0 && PyErr_Occurred())
		return -2;
	if (isnan(s)) {
		PyErr_SetString(PyExc_ValueError, "timeout is NaN");
		return -2;
	}
	if (s <= 0)
		return 0;
	if (s >= 9e9) /* ~285 years: forever */
		return -1;
	return (int64_t)(s * 1e9);
}

/* ----------------------------------------------------------- waiting */

static const int wrapped_signals[] = {SIGINT, SIGTERM};
#define N_WRAPPED (sizeof(wrapped_signals) / sizeof(wrapped_signals[0]))
static struct sigaction saved_action[N_WRAPPED];
static bool wrapped[N_WRAPPED];
/* Set before the handlers are wrapped and cleared after they are
 * restored, so a handler never sees a half-set target. */
static void (*volatile target_interrupt)(void *);
static void *volatile target_obj;
static volatile sig_atomic_t signalled;
static unsigned long main_thread;

static void wrapper(int sig, siginfo_t *si, void *uc)
{
	for (size_t i = 0; i < N_WRAPPED; i++) {
		if (wrapped_signals[i] != sig)
			continue;
		const struct sigaction *old = &saved_action[i];
		if (old->sa_flags & SA_SIGINFO)
			old->sa_sigaction(sig, si, uc);
		else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN)
			old->sa_handler(sig);
	}
	signalled = 1;
	void (*fn)(void *) = target_interrupt;
	void *obj = target_obj;
	if (fn && obj)
		fn(obj);
}

static void wrap_handlers(const struct py_wait *w)
{
	target_obj = w->obj;
	target_interrupt = w->interrupt;
	for (size_t i = 0; i < N_WRAPPED; i++) {
		struct sigaction cur, sa;
		wrapped[i] = false;
		if (sigaction(wrapped_signals[i], NULL, &cur) != 0)
			continue;
		bool is_fn = (cur.sa_flags & SA_SIGINFO) ||
			     (cur.sa_handler != SIG_DFL && cur.sa_handler != SIG_IGN);
		if (!is_fn)
			continue; /* default (ends the process) or ignored */
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = wrapper;
		sa.sa_mask = cur.sa_mask;
		sa.sa_flags = (cur.sa_flags & ~(int)SA_RESETHAND) | SA_SIGINFO | SA_ONSTACK;
		saved_action[i] = cur;
		if (sigaction(wrapped_signals[i], &sa, NULL) == 0)
			wrapped[i] = true;
	}
}

static void unwrap_handlers(void)
{
	for (size_t i = 0; i < N_WRAPPED; i++)
		if (wrapped[i])
			sigaction(wrapped_signals[i], &saved_action[i], NULL);
	target_interrupt = NULL;
	target_obj = NULL;
}

int64_t py_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int py_wait_run(const struct py_wait *w, int64_t timeout_ns)
{
	bool in_main = PyThread_get_thread_ident() == main_thread;
	int64_t deadline = timeout_ns > 0 ? py_mono_ns() + timeout_ns : 0;

	for (;;) {
		int rc;
		if (in_main) {
			signalled = 0;
			wrap_handlers(w);
			/* A signal that came before the wrap has tripped Python's
			 * flag only: run its handler now. */
			if (PyErr_CheckSignals() < 0) {
				unwrap_handlers();
				return PY_WAIT_RAISED;
			}
		}
		Py_BEGIN_ALLOW_THREADS
		rc = w->wait(w->obj, timeout_ns, w->out);
		Py_END_ALLOW_THREADS
		if (!in_main)
			return rc;
		unwrap_handlers();
		bool sig = signalled;
		/* The handler's interrupt came after the wait had its answer:
		 * it is still pending on the object, and the next wait that
		 * returns EINTR without a signal is retried, not reported. */
		if (sig && rc != SHMBUS_EINTR)
			*w->stale = true;
		if (sig && PyErr_CheckSignals() < 0)
			return PY_WAIT_RAISED;
		if (rc != SHMBUS_EINTR)
			return rc;
		if (!sig && !*w->stale)
			return rc; /* interrupt() from another thread */
		if (!sig)
			*w->stale = false;
		/* A handler that did not raise: wait out the rest. */
		if (timeout_ns > 0) {
			timeout_ns = deadline - py_mono_ns();
			if (timeout_ns <= 0)
				return SHMBUS_ETIMEDOUT;
		}
	}
}

/* ------------------------------------------------------------ module */

static PyObject *mod_version(PyObject *self, PyObject *args)
{
	(void)self;
	(void)args;
	uint32_t v = shmbus_version();
	return Py_BuildValue("(III)", v >> 16, (v >> 8) & 0xff, v & 0xff);
}

static PyObject *mod_strerror(PyObject *self, PyObject *arg)
{
	(void)self;
	long code = PyLong_AsLong(arg);
	if (code == -1 && PyErr_Occurred())
		return NULL;
	return PyUnicode_FromString(shmbus_strerror((int)code));
}

static PyObject *mod_topic_name_valid(PyObject *self, PyObject *arg)
{
	(void)self;
	const char *name = PyUnicode_AsUTF8(arg);
	if (!name)
		return NULL;
	return PyBool_FromLong(shmbus_topic_name_valid(name));
}

static PyMethodDef module_methods[] = {
	{"library_version", mod_version, METH_NOARGS,
	 "The running libshmbus version as (major, minor, patch)."},
	{"strerror", mod_strerror, METH_O, "Text for a SHMBUS_E* code."},
	{"topic_name_valid", mod_topic_name_valid, METH_O,
	 "Whether a string is a valid topic name."},
	{"wire_fields", py_wire_fields, METH_VARARGS,
	 "wire_fields(buffer) -> {field number: (wire type, offset, value)}: the\n"
	 "top-level fields of a protobuf message (the last occurrence of each);\n"
	 "value is the varint or fixed value, or the length of a length-delimited\n"
	 "field whose bytes start at offset. Bounds-checked: raises BadMessage."},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
	PyModuleDef_HEAD_INIT,
	.m_name = "shmbus._shmbus",
	.m_doc = "The C layer of the shmbus package: bus, publishers, subscribers, views, "
		 "loans and wait sets over libshmbus (untyped bytes).",
	.m_size = -1,
	.m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__shmbus(void);

PyMODINIT_FUNC PyInit__shmbus(void)
{
	if (shmbus_version() >> 16 != SHMBUS_VERSION_MAJOR) {
		PyErr_Format(PyExc_ImportError,
			     "libshmbus %u.x is loaded, this module was built for %d.x",
			     shmbus_version() >> 16, SHMBUS_VERSION_MAJOR);
		return NULL;
	}
	PyObject *m = PyModule_Create(&module_def);
	if (!m)
		return NULL;
	PyTypeObject *types[] = {&PyMsgInfo_Type, &PyBus_Type, &PyPub_Type, &PySub_Type,
				 &PyView_Type, &PyLoan_Type, &PyWaitSet_Type};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (PyType_Ready(types[i]) < 0)
			goto fail;
		const char *dot = strrchr(types[i]->tp_name, '.');
		if (PyModule_AddObjectRef(m, dot ? dot + 1 : types[i]->tp_name,
					  (PyObject *)types[i]) < 0)
			goto fail;
	}
	if (py_errors_init(m) < 0)
		goto fail;
	PyObject *threading = PyImport_ImportModule("threading");
	PyObject *mt = threading ? PyObject_CallMethod(threading, "main_thread", NULL) : NULL;
	PyObject *ident = mt ? PyObject_GetAttrString(mt, "ident") : NULL;
	Py_XDECREF(threading);
	Py_XDECREF(mt);
	if (!ident)
		goto fail;
	main_thread = PyLong_AsUnsignedLong(ident);
	Py_DECREF(ident);
	if (PyErr_Occurred())
		goto fail;
	if (PyModule_AddIntConstant(m, "START_NEW", SHMBUS_START_NEW) < 0 ||
	    PyModule_AddIntConstant(m, "START_LAST", SHMBUS_START_LAST) < 0 ||
	    PyModule_AddIntConstant(m, "START_FIRST", SHMBUS_START_FIRST) < 0 ||
	    PyModule_AddIntConstant(m, "LAPPED_PACE", SHMBUS_LAPPED_PACE) < 0 ||
	    PyModule_AddIntConstant(m, "LAPPED_OLDEST", SHMBUS_LAPPED_OLDEST) < 0 ||
	    PyModule_AddIntConstant(m, "TOPIC_INTEGRITY", SHMBUS_TOPIC_INTEGRITY) < 0 ||
	    PyModule_AddIntConstant(m, "WAITSET_MAX", SHMBUS_WAITSET_MAX) < 0 ||
	    PyModule_AddStringConstant(m, "HEADER_VERSION", SHMBUS_VERSION_STRING) < 0)
		goto fail;
	return m;
fail:
	Py_DECREF(m);
	return NULL;
}
