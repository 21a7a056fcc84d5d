/*
 * test_broker.c - the broker's modules on their own, without sockets: the
 * policy grammar (actions, limits, leading '/'), and the request handler
 * answering a session of another user the way the policy says (HELLO
 * first, create needs `create`, quotas, what LIST and INFO show, owner-only
 * REMOVE, CLOSE of someone else's line).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "harness.h"

/* ---------------------------------------------------------------- policy */

static void test_policy_grammar(void)
{
	struct policy p;
	struct policy_limits l;
	char err[256], why[128];
	const char *text = "allow user:1000 subscribe,create sensors/*\n"
			   "allow user:1001 publish /cmd/*\n"
			   "deny * * secret/*\n"
			   "allow * subscribe *\n"
			   "limit user:1000 topics=2 bytes=1M\n"
			   "limit * connections=3\n";
	CU_ASSERT_EQUAL_FATAL(policy_parse(&p, "t", text, 0, err, sizeof(err)), 0);
	CU_ASSERT_TRUE(policy_allows(&p, 1000, 1000, POLICY_CREATE, "sensors/a", why, sizeof(why)));
	CU_ASSERT_FALSE(policy_allows(&p, 1000, 1000, POLICY_PUBLISH, "sensors/a", why,
				      sizeof(why)));
	/* A leading '/' in the name or the glob is ignored. */
	CU_ASSERT_TRUE(policy_allows(&p, 1001, 1001, POLICY_PUBLISH, "cmd/vel", why, sizeof(why)));
	CU_ASSERT_TRUE(policy_allows(&p, 1001, 1001, POLICY_PUBLISH, "/cmd/vel", why, sizeof(why)));
	CU_ASSERT_TRUE(policy_allows(&p, 1000, 1000, POLICY_SUBSCRIBE, "/sensors/a", why,
				     sizeof(why)));
	CU_ASSERT_FALSE(policy_allows(&p, 1001, 1001, POLICY_CREATE, "cmd/vel", why, sizeof(why)));
	CU_ASSERT_FALSE(policy_allows(&p, 7, 7, POLICY_SUBSCRIBE, "secret/x", why, sizeof(why)));
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "line 3"));
	/* The owner is never limited nor refused. */
	CU_ASSERT_TRUE(policy_allows(&p, 0, 0, POLICY_CREATE, "secret/x", why, sizeof(why)));
	policy_limits_for(&p, 0, 0, &l);
	CU_ASSERT_EQUAL(l.topics, UINT64_MAX);
	/* First matching limit line; defaults for what it leaves out. */
	policy_limits_for(&p, 1000, 1000, &l);
	CU_ASSERT_EQUAL(l.topics, 2);
	CU_ASSERT_EQUAL(l.bytes, 1u << 20);
	CU_ASSERT_EQUAL(l.connections, POLICY_DEFAULT_CONNECTIONS);
	policy_limits_for(&p, 1001, 1001, &l);
	CU_ASSERT_EQUAL(l.connections, 3);
	CU_ASSERT_EQUAL(l.topics, POLICY_DEFAULT_TOPICS);
	policy_free(&p);
	/* Without limit lines: the defaults. */
	CU_ASSERT_EQUAL_FATAL(policy_parse(&p, "t", "allow * * *\n", 0, err, sizeof(err)), 0);
	policy_limits_for(&p, 5, 5, &l);
	CU_ASSERT_EQUAL(l.topics, POLICY_DEFAULT_TOPICS);
	CU_ASSERT_EQUAL(l.bytes, POLICY_DEFAULT_BYTES);
	CU_ASSERT_TRUE(policy_allows(&p, 5, 5, POLICY_CREATE, "x", why, sizeof(why)));
	policy_free(&p);
	/* Errors name the place. */
	CU_ASSERT_NOT_EQUAL(policy_parse(&p, "t", "allow * fly *\n", 0, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "t:1:9: unknown action 'fly'"));
	CU_ASSERT_NOT_EQUAL(policy_parse(&p, "t", "\nlimit * bytes=1T\n", 0, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "t:2:"));
	CU_ASSERT_NOT_EQUAL(policy_parse(&p, "t", "limit * topics=99999999999999999999\n", 0,
					 err, sizeof(err)),
			    0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "too large"));
}

/* ------------------------------------------------------------- requests */

static struct broker b;
static pid_t gone;

static int setup(void)
{
	char err[256];
	static const char policy[] = "allow user:2000 publish,subscribe,create mine/*\n"
				     "allow user:2001 subscribe mine/*\n"
				     "limit user:2000 topics=2 bytes=1M\n";
	gone = fork();
	if (gone == 0)
		_exit(0);
	waitpid(gone, NULL, 0);
	b.uid = getuid();
	b.policy.owner = getuid();
	if (policy_parse(&b.policy, "t", policy, getuid(), err, sizeof(err)) ||
	    registry_open(&b.reg, "unit", NULL, err, sizeof(err))) {
		fprintf(stderr, "setup: %s\n", err);
		return 1;
	}
	return 0;
}

static int teardown(void)
{
	broker_free(&b);
	registry_close(&b.reg, false);
	policy_free(&b.policy);
	return 0;
}

struct answer {
	int status;
	char text[1024];
	int nfds;
};

/* One request from client c; the reply's status and text (or body). */
static struct answer ask(struct client *c, uint16_t op, const struct proto_buf *body)
{
	struct proto_buf req = { 0 }, out = { 0 };
	struct answer a = { 0 };
	int fds[PROTO_MAX_FDS];
	size_t f = proto_frame_begin(&req, op, 0);
	if (body)
		proto_put_bytes(&req, body->data, body->len);
	proto_frame_end(&req, f);
	broker_handle_frame(&b, c, req.data, req.len, &out, fds, &a.nfds);
	for (int i = 0; i < a.nfds; i++)
		close(fds[i]);
	struct proto_hdr h;
	memcpy(&h, out.data, sizeof(h));
	a.status = h.status;
	size_t n = h.len < sizeof(a.text) - 1 ? h.len : sizeof(a.text) - 1;
	memcpy(a.text, out.data + sizeof(h), n);
	a.text[n] = '\0';
	proto_buf_free(&req);
	proto_buf_free(&out);
	return a;
}

static struct answer ask_open(struct client *c, uint32_t role, bool create, const char *topic,
			      uint32_t max)
{
	struct proto_buf body = { 0 };
	struct proto_open o = { .role = role, .create = create, .slot_count = 4,
				.max_message_size = max, .topic = topic,
				.topic_len = (uint32_t)strlen(topic), .type_len = PROTO_ANY_TYPE };
	proto_encode_open(&body, &o);
	struct answer a = ask(c, OP_OPEN, &body);
	proto_buf_free(&body);
	return a;
}

static struct answer ask_name(struct client *c, uint16_t op, const char *name)
{
	struct proto_buf body = { 0 };
	proto_encode_name(&body, name);
	struct answer a = ask(c, op, &body);
	proto_buf_free(&body);
	return a;
}

static struct client *hello(uid_t uid)
{
	struct client *c = client_new(&b, -1, gone, uid, uid);
	uint32_t v = PROTO_VERSION;
	struct proto_buf body = { 0 };
	proto_put_bytes(&body, &v, sizeof(v));
	struct answer a = ask(c, OP_HELLO, &body);
	proto_buf_free(&body);
	CU_ASSERT_EQUAL(a.status, 0);
	CU_ASSERT_EQUAL(a.nfds, 2); /* the bus page and the wake board */
	return c;
}

static int count_entry(void *ctx, const struct proto_entry *e)
{
	(void)e;
	(*(int *)ctx)++;
	return 0;
}

static void test_requests(void)
{
	/* Nothing before HELLO. */
	struct client *c = client_new(&b, -1, gone, 2000, 2000);
	struct answer a = ask(c, OP_LIST, NULL);
	CU_ASSERT_EQUAL(a.status, SHMBUS_EBROKER);
	CU_ASSERT_PTR_NOT_NULL(strstr(a.text, "HELLO"));
	client_drop(&b, c);

	struct client *owner = hello(getuid()), *alice = hello(2000), *bob = hello(2001);
	/* bob may subscribe but not create. */
	a = ask_open(bob, ROLE_SUB, true, "mine/a", 64);
	CU_ASSERT_EQUAL(a.status, SHMBUS_EPERM);
	CU_ASSERT_PTR_NOT_NULL(strstr(a.text, "create"));
	/* alice creates two, within her limits; the third is one too many,
	 * and one over her bytes is refused too. */
	CU_ASSERT_EQUAL(ask_open(alice, ROLE_PUB, true, "mine/a", 64).status, 0);
	CU_ASSERT_EQUAL(ask_open(alice, ROLE_PUB, true, "mine/b", 64).status, 0);
	a = ask_open(alice, ROLE_PUB, true, "mine/c", 64);
	CU_ASSERT_EQUAL(a.status, SHMBUS_ELIMIT);
	CU_ASSERT_PTR_NOT_NULL(strstr(a.text, "limit"));
	a = ask_open(owner, ROLE_PUB, true, "owners/big", 64);
	CU_ASSERT_EQUAL(a.status, 0); /* the owner has no limits */
	/* bob subscribes to what exists; not elsewhere. */
	a = ask_open(bob, ROLE_SUB, false, "mine/a", 0);
	CU_ASSERT_EQUAL(a.status, 0);
	CU_ASSERT_EQUAL(a.nfds, 3); /* meta, data, and his new page */
	CU_ASSERT_EQUAL(ask_open(bob, ROLE_SUB, false, "owners/big", 0).status, SHMBUS_EPERM);
	/* LIST: only what each may subscribe to. */
	struct proto_buf req = { 0 }, out = { 0 };
	int fds[PROTO_MAX_FDS], nfds, n = 0;
	size_t f = proto_frame_begin(&req, OP_LIST, 0);
	proto_frame_end(&req, f);
	broker_handle_frame(&b, bob, req.data, req.len, &out, fds, &nfds);
	CU_ASSERT_EQUAL(proto_decode_entries(out.data + sizeof(struct proto_hdr),
					     out.len - sizeof(struct proto_hdr), count_entry, &n),
			0);
	CU_ASSERT_EQUAL(n, 2);
	proto_buf_free(&out);
	n = 0;
	broker_handle_frame(&b, owner, req.data, req.len, &out, fds, &nfds);
	CU_ASSERT_EQUAL(proto_decode_entries(out.data + sizeof(struct proto_hdr),
					     out.len - sizeof(struct proto_hdr), count_entry, &n),
			0);
	CU_ASSERT_EQUAL(n, 3);
	proto_buf_free(&out);
	proto_buf_free(&req);
	/* INFO: for those who may subscribe. */
	CU_ASSERT_EQUAL(ask_name(bob, OP_INFO, "/mine/a").status, 0);
	CU_ASSERT_EQUAL(ask_name(bob, OP_INFO, "owners/big").status, SHMBUS_EPERM);
	/* REMOVE: the owner's alone. */
	a = ask_name(alice, OP_REMOVE, "mine/a");
	CU_ASSERT_EQUAL(a.status, SHMBUS_EPERM);
	CU_ASSERT_PTR_NOT_NULL(strstr(a.text, "only the bus's own user"));
	CU_ASSERT_EQUAL(ask_name(owner, OP_REMOVE, "mine/a").status, 0);
	CU_ASSERT_EQUAL(ask_name(owner, OP_REMOVE, "mine/a").status, SHMBUS_ENOTOPIC);
	CU_ASSERT_EQUAL(ask_name(bob, OP_INFO, "mine/a").status, SHMBUS_ENOTOPIC);
	/* With one of hers gone, alice may create again. */
	CU_ASSERT_EQUAL(ask_open(alice, ROLE_PUB, true, "mine/c", 64).status, 0);
	/* CLOSE of a line that is not the client's own is refused. */
	struct proto_buf body = { 0 };
	struct proto_close cl = { registry_find(&b.reg, "mine/b")->id, ROLE_PUB, 0 };
	proto_encode_close(&body, &cl);
	struct client *other = client_new(&b, -1, getpid(), 2000, 2000);
	CU_ASSERT_EQUAL(ask(other, OP_HELLO, NULL).status, 0);
	CU_ASSERT_EQUAL(ask(other, OP_CLOSE, &body).status, SHMBUS_EINVAL);
	CU_ASSERT_EQUAL(ask(alice, OP_CLOSE, &body).status, 0);
	proto_buf_free(&body);
	client_drop(&b, other);
	client_drop(&b, bob);
	client_drop(&b, alice);
	client_drop(&b, owner);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("policy", NULL, NULL);
	CU_add_test(s, "grammar: actions, limits, leading '/'", test_policy_grammar);
	s = CU_add_suite("requests", setup, teardown);
	CU_add_test(s, "a session: HELLO, create, quotas, LIST, INFO, REMOVE, CLOSE",
		    test_requests);
}

int main(void)
{
	return h_run("test_broker", add);
}
