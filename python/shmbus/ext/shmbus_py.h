/*
 * shmbus_py.h - what the files of the _shmbus extension share: the object
 * layouts, the exception mapping, the message-info type, the buffer
 * exporter that hands slot memory to Python, and the blocking-call helper
 * that lets Ctrl-C end a wait.
 *
 * The extension is the untyped layer: bytes in, bytes out, views into
 * slots. The typed layer (protobuf classes from the schema stored with a
 * topic) is Python, in shmbus/__init__.py, on top of these types.
 */
#ifndef SHMBUS_PY_H
#define SHMBUS_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdbool.h>
#include <stdint.h>

#include <shmbus/shmbus.h>

/* ------------------------------------------------------------ errors */

/* Raise the exception class of a SHMBUS_E* code, its text being
 * shmbus_errmsg() (or the code's text when that is empty), with `code`
 * and `errmsg` attributes. `what` names the call, e.g. "take". Returns
 * NULL so callers can `return py_raise(...)`. */
PyObject *py_raise(int rc, const char *what);
int py_errors_init(PyObject *module);
/* Raise `cls` (NULL: the class of rc) with a text of our own. */
PyObject *py_raise_msg(int rc, PyObject *cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
extern PyObject *py_exc_buffer_in_use; /* shmbus.BufferInUse */

/* ---------------------------------------------------------- msg info */

extern PyTypeObject PyMsgInfo_Type;
PyObject *py_msginfo_new(const struct shmbus_msg_info *info);

/* ------------------------------------------------------ slot buffers */

/*
 * A slot buffer exports slot memory (a view's message, or a loan) through
 * the buffer protocol and decides when that memory stops being reachable:
 *
 *   OPEN --end()--> ENDED (no exports alive: finish() runs at once)
 *     \--end() with exports alive--> DRAINING --last export released-->
 *                                    finish() runs, ENDED
 *
 * New exports are refused once end() was called. Its own memoryview
 * (`data`) is released by end(), so using it afterwards raises
 * ValueError. An ndarray or a memoryview slice that still holds an export
 * cannot be revoked: end() reports them (the count) and the memory stays
 * the subscriber's or publisher's until they are gone.
 */
enum slotbuf_state { SLOTBUF_OPEN, SLOTBUF_DRAINING, SLOTBUF_ENDED };

struct slotbuf {
	void *data;
	Py_ssize_t len;
	bool readonly;
	enum slotbuf_state state;
	Py_ssize_t exports;  /* buffers handed out and not yet released */
	PyObject *mv;        /* weak reference to the memoryview handed out
	                        as `data` (made on demand), or NULL */
	/* Runs once, when the memory may no longer be read or written. */
	void (*finish)(PyObject *owner);
};

/* end(): refuse new exports, release `mv`; returns how many exports are
 * still alive (finish() runs when they are gone; at once when 0), or -1
 * with an exception set. */
Py_ssize_t slotbuf_end(PyObject *owner, struct slotbuf *b);
PyObject *slotbuf_memoryview(PyObject *owner, struct slotbuf *b);

/* Owners (View, Loan) put their slot buffer first, right after the
 * object header, and share these buffer procedures. */
struct slotbuf_owner {
	PyObject_HEAD
	struct slotbuf buf;
};
extern PyBufferProcs slotbuf_as_buffer;

/* ----------------------------------------------------------- objects */

typedef struct {
	PyObject_HEAD
	shmbus_bus *bus;
	Py_ssize_t children; /* open publishers, subscribers */
} PyBus;

typedef struct {
	PyObject_HEAD
	shmbus_pub *pub;
	PyBus *bus;
	PyObject *loan; /* the open Loan, or NULL */
} PyPub;

typedef struct {
	PyObject_HEAD
	shmbus_sub *sub;
	PyBus *bus;
	PyObject *view;      /* the open (or draining) View, or NULL */
	Py_ssize_t waitsets; /* wait sets it is a member of */
	bool intr_stale;     /* see struct py_wait */
	int busy;            /* blocking calls on it now (its own, or a wait
	                        set's), GIL released */
	void *scratch;       /* take() copies here first */
	size_t scratch_cap;
} PySub;

typedef struct {
	PyObject_HEAD
	struct slotbuf buf;
	PySub *sub;  /* NULL once finished */
	struct shmbus_view view;
	PyObject *info;
	int result;  /* what shmbus_sub_release said */
} PyView;

typedef struct {
	PyObject_HEAD
	struct slotbuf buf;
	PyPub *pub;  /* NULL once finished */
	size_t capacity;
	bool publish; /* finish() publishes buf.len bytes; else discards */
	int result;
	uint64_t seq;
} PyLoan;

typedef struct {
	PyObject_HEAD
	shmbus_waitset *ws;
	PyObject *members; /* list of PySub */
	bool intr_stale;
	bool busy;         /* in a wait, GIL released */
} PyWaitSet;

extern PyTypeObject PyBus_Type, PyPub_Type, PySub_Type, PyView_Type, PyLoan_Type,
	PyWaitSet_Type;

_Static_assert(offsetof(PyView, buf) == offsetof(struct slotbuf_owner, buf),
	       "a View's slot buffer comes first");
_Static_assert(offsetof(PyLoan, buf) == offsetof(struct slotbuf_owner, buf),
	       "a Loan's slot buffer comes first");

/* Check a handle is open; raise shmbus.StateError otherwise. */
bool py_bus_open(PyBus *b);
bool py_pub_open(PyPub *p);
bool py_sub_open(PySub *s);
/* Open, and in no blocking call of another thread: a subscriber belongs to
 * one thread at a time (shmbus.h), and one closed under a wait would be
 * freed under it. interrupt() needs neither. */
bool py_sub_idle(PySub *s);

/* Seconds (float, None = forever) to the API's nanoseconds. -2 and an
 * exception when the value is not a number or is NaN. */
int64_t py_timeout_ns(PyObject *timeout);

/* ---------------------------------------------------------- waiting */

/*
 * A blocking wait with the GIL released, ended by a signal. In the main
 * thread, while it waits, the handlers of SIGINT and SIGTERM that Python
 * installed are wrapped so that, after running, they interrupt this wait
 * (shmbus_*_interrupt: async-signal-safe); the wait then returns
 * SHMBUS_EINTR, the Python handler runs (KeyboardInterrupt), and a handler
 * that does not raise lets the wait go on for the rest of its timeout.
 * Other threads wait without this (Python runs handlers in the main thread
 * only); they end by timeout or by interrupt().
 */
struct py_wait {
	int (*wait)(void *obj, int64_t timeout_ns, void *out);
	void (*interrupt)(void *obj);
	void *obj;
	void *out;
	bool *stale; /* the object's: an interrupt of a signal is pending */
};

/* SHMBUS_OK, ETIMEDOUT, EINTR (an interrupt() that was not a signal), or
 * another code; -1000 when a signal handler raised (exception set). */
#define PY_WAIT_RAISED (-1000)
int py_wait_run(const struct py_wait *w, int64_t timeout_ns);
/* CLOCK_MONOTONIC in ns, for the waits' deadlines. */
int64_t py_mono_ns(void);

/* ------------------------------------------------------- wire format */

PyObject *py_wire_fields(PyObject *self, PyObject *args);

#endif /* SHMBUS_PY_H */
