/* netobs._connect: the runs of plain TCP checks (a connect) and plain HTTP checks (a connect and one HTTP/1.1
 * exchange, see "the HTTP/1.1 exchange" below), scheduled, issued and timed by a thread in C.
 *
 * Theory of operation. A plain TCP check (no TLS, no path trace, an address for a target) is a socket,
 * a non-blocking connect, one wait and a close. The kernel's share of that is ~50 us on this class of
 * machine; in Python the run around it (a timer, a task, coroutines, a future, the epoll bookkeeping)
 * cost another ~100 us. Here one thread owns all such jobs: a heap of due times on CLOCK_MONOTONIC, one
 * timerfd armed for the earliest, and one epoll set in which each connecting socket waits (one-shot, for
 * writability). When a connect completes, fails or passes its deadline, the thread closes the socket and
 * queues a completion: what happened (an errno, or the deadline), the slot, when the run started (on both
 * clocks) and ended, and the kernel's handshake round trip (tcp_info's tcpi_rtt, when no SYN was
 * retransmitted). The thread writes an eventfd when the queue turns non-empty; the agent's event loop reads
 * the whole queue with one ``drain`` call and turns each completion into a result record in Python.
 *
 * Scheduling mirrors netobs.scheduler: slot n of a job is first + n * interval; a slot that already passed
 * when the previous one was taken is skipped (reported as ``MISSED`` with how many), and a run that starts
 * more than shed_after late while the running average of lateness is above half of that is skipped as
 * overload (``SKIPPED``). The thread never touches a Python object and never needs the GIL; the calls from
 * Python (add, remove, drain, close) take the engine's mutex, without holding the GIL while they wait.
 *
 * A removed job stops after its current run: the run still completes, and when the job is forgotten the
 * queue says so (``RELEASED``), so the caller knows when its own record of the job can go.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum { DONE = 0, TIMEOUT = 1, SKIPPED = 2, MISSED = 3, RELEASED = 4 };
enum { SLOT = 0, DEADLINE = 1 };
enum { CONNECTING = 0, WAITING = 1, RECEIVING = 2 };
#define LATENESS_AVERAGE_WEIGHT 0.002 /* as netobs.scheduler */
#define TIMER_TAG UINT64_MAX
#define CONTROL_TAG (UINT64_MAX - 1)

typedef struct {
    int64_t at_ns;
    uint32_t job;
    uint32_t seq; /* the job's generation (SLOT) or run number (DEADLINE) when pushed */
    int kind;
} Event;

/* An HTTP/1.1 job's request and what its run has received. */
typedef struct {
    char *request; /* the request's bytes; the traceparent's ids are written into it for each run */
    size_t request_len;
    long traceparent_at;  /* offset of the "00-" of the traceparent value, or -1 */
    int64_t max_body_bytes;
    int head_request;
} Exchange;

typedef struct {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int64_t user_id;
    Exchange *http; /* NULL: a plain connect */
    int64_t interval_ns, timeout_ns, shed_after_ns;
    int64_t next_slot_ns;
    int64_t slot_ns, start_mono_ns, start_wall_ns;
    uint32_t gen, run;
    int fd;     /* the run in flight's socket, or -1 */
    /* The HTTP exchange of the run in flight (see exchange_* below). */
    int stage;                   /* CONNECTING, WAITING (request sent), RECEIVING (response started) */
    size_t sent;                 /* request bytes handed to the kernel */
    int64_t rtt_us, connect_ns;  /* the handshake: kernel RTT (-1: none), and start to connected (monotonic) */
    int64_t tx_wall_ns, tx_mono_ns, first_rx_mono_ns, last_rx_mono_ns, first_rx_stamp_ns, last_rx_stamp_ns;
    uint8_t ids[24];             /* the traceparent's trace id and parent span id */
    char *buf;                   /* the response so far */
    size_t len, cap;
    int in_use; /* a handle given out and not yet released */
    int active; /* scheduled (not removed) */
} Job;

typedef struct {
    int64_t user_id;
    int kind, err;
    int64_t slot_ns, start_mono_ns, start_wall_ns, elapsed_ns;
    int64_t rtt_us; /* -1: no kernel measure */
    /* HTTP jobs only */
    int stage;
    int64_t connect_ns, tx_wall_ns, ttfb_ns, transfer_ns;
    uint8_t ids[24];
    int http;       /* an HTTP job's: the fields below are set */
    char *response; /* malloc'd, owned by the completion (NULL: nothing read) */
    size_t response_len;
    int64_t max_body_bytes;
    int head_request;
} Completion;

typedef struct {
    PyObject_HEAD
    pthread_mutex_t mu;
    pthread_t thread;
    int thread_started;
    int stopping;
    int epfd, timerfd, wakefd, controlfd;
    Job *jobs;
    uint32_t njobs, nfree;
    size_t jobs_cap, free_cap;
    uint32_t *free_ids;
    Event *heap;
    size_t nheap, heap_cap;
    Completion *done;
    size_t ndone, done_cap;
    int signalled;
    int64_t armed_ns; /* what the timerfd is set to, 0: nothing */
    uint8_t rand[4080]; /* random bytes for trace ids, from getrandom */
    size_t rand_used;
    unsigned seed;     /* rand_r's, when getrandom fails */
    double lateness_average_ns;
} Engine;

static int64_t clock_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int grow(void **data, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return 0;
    size_t cap2 = *cap ? *cap * 2 : 64;
    while (cap2 < need) cap2 *= 2;
    void *p = realloc(*data, cap2 * size);
    if (p == NULL) return -1;
    *data = p;
    *cap = cap2;
    return 0;
}

/* -- the heap of due times ------------------------------------------------------------------------ */

static int heap_push(Engine *e, Event ev) {
    if (grow((void **)&e->heap, &e->heap_cap, e->nheap + 1, sizeof(Event)) < 0) return -1;
    size_t i = e->nheap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (e->heap[parent].at_ns <= ev.at_ns) break;
        e->heap[i] = e->heap[parent];
        i = parent;
    }
    e->heap[i] = ev;
    return 0;
}

static Event heap_pop(Engine *e) {
    Event top = e->heap[0];
    Event last = e->heap[--e->nheap];
    size_t i = 0, n = e->nheap;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && e->heap[child + 1].at_ns < e->heap[child].at_ns) child++;
        if (last.at_ns <= e->heap[child].at_ns) break;
        e->heap[i] = e->heap[child];
        i = child;
    }
    if (n) e->heap[i] = last;
    return top;
}

/* Arm the timerfd for the earliest due time, if that changed. */
static void rearm(Engine *e) {
    int64_t at = e->nheap ? e->heap[0].at_ns : 0;
    if (at == e->armed_ns) return;
    struct itimerspec spec;
    memset(&spec, 0, sizeof(spec));
    if (at) {
        if (at < 1) at = 1;
        spec.it_value.tv_sec = at / 1000000000;
        spec.it_value.tv_nsec = at % 1000000000;
    }
    timerfd_settime(e->timerfd, TFD_TIMER_ABSTIME, &spec, NULL);
    e->armed_ns = at;
}

/* -- completions ---------------------------------------------------------------------------------- */

static Completion *queue(Engine *e, int64_t user_id, int kind, int err, int64_t slot_ns, int64_t start_mono_ns,
                         int64_t start_wall_ns, int64_t elapsed_ns, int64_t rtt_us) {
    if (grow((void **)&e->done, &e->done_cap, e->ndone + 1, sizeof(Completion)) < 0) return NULL;
    Completion *c = &e->done[e->ndone++];
    memset(c, 0, sizeof(*c));
    c->user_id = user_id;
    c->kind = kind;
    c->err = err;
    c->slot_ns = slot_ns;
    c->start_mono_ns = start_mono_ns;
    c->start_wall_ns = start_wall_ns;
    c->elapsed_ns = elapsed_ns;
    c->rtt_us = rtt_us;
    return c;
}

/* A phase's length: the kernel's measure (from the wall-clock send time to a receive stamp) when it is
 * plausible, not negative and not longer than the thread saw; else what the thread saw (as _Phase). */
static int64_t phase_ns(int64_t from_wall, int64_t to_stamp, int64_t seen_ns) {
    int64_t kernel = to_stamp - from_wall;
    return from_wall > 0 && to_stamp > 0 && kernel >= 0 && kernel <= seen_ns ? kernel : seen_ns;
}

/* The end of ``j``'s current run (its socket closed already); ``now`` on CLOCK_MONOTONIC. */
static void complete(Engine *e, Job *j, int kind, int err, int64_t now, int64_t rtt_us) {
    Completion *c =
        queue(e, j->user_id, kind, err, j->slot_ns, j->start_mono_ns, j->start_wall_ns, now - j->start_mono_ns, rtt_us);
    if (j->http == NULL) return;
    if (c == NULL) {
        free(j->buf);
    } else {
        c->stage = j->stage;
        c->rtt_us = j->stage > CONNECTING ? j->rtt_us : rtt_us;
        c->connect_ns = j->stage > CONNECTING ? j->connect_ns : now - j->start_mono_ns;
        c->tx_wall_ns = j->tx_wall_ns;
        if (j->stage == WAITING) c->ttfb_ns = now - j->tx_mono_ns;
        if (j->stage == RECEIVING) {
            c->ttfb_ns = phase_ns(j->tx_wall_ns, j->first_rx_stamp_ns, j->first_rx_mono_ns - j->tx_mono_ns);
            c->transfer_ns = kind == TIMEOUT ? now - j->first_rx_mono_ns
                                             : phase_ns(j->first_rx_stamp_ns, j->last_rx_stamp_ns,
                                                        j->last_rx_mono_ns - j->first_rx_mono_ns);
        }
        memcpy(c->ids, j->ids, sizeof(c->ids));
        c->http = 1;
        c->response = j->buf;
        c->response_len = j->len;
        c->max_body_bytes = j->http->max_body_bytes;
        c->head_request = j->http->head_request;
    }
    j->buf = NULL;
    j->len = j->cap = 0;
}

static void free_exchange(Exchange *x) {
    if (x == NULL) return;
    free(x->request);
    free(x);
}

static void release_if_done(Engine *e, uint32_t id) {
    Job *j = &e->jobs[id];
    if (j->active || j->fd >= 0 || !j->in_use) return;
    queue(e, j->user_id, RELEASED, 0, 0, 0, 0, 0, -1);
    j->in_use = 0;
    j->gen++;
    free_exchange(j->http);
    j->http = NULL;
    if (grow((void **)&e->free_ids, &e->free_cap, e->nfree + 1, sizeof(uint32_t)) == 0)
        e->free_ids[e->nfree++] = id;
}

static void end_run(Engine *e, uint32_t id, int kind, int err, int64_t rtt_us) {
    Job *j = &e->jobs[id];
    int64_t now = clock_ns(CLOCK_MONOTONIC);
    close(j->fd); /* also drops it from the epoll set */
    j->fd = -1;
    complete(e, j, kind, err, now, rtt_us);
    release_if_done(e, id);
}

static int64_t handshake_rtt_us(int fd) {
    struct tcp_info info;
    socklen_t len = sizeof(info);
    memset(&info, 0, sizeof(info));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) < 0 || len < 104) return -1;
    if (!info.tcpi_rtt || info.tcpi_total_retrans) return -1;
    return info.tcpi_rtt;
}

/* -- the HTTP/1.1 exchange -------------------------------------------------------------------------
 *
 * After the connect, an HTTP job sends its request (the traceparent's ids drawn for this run and written
 * into it), then reads until the response is complete by its framing (response_complete), the server
 * closes, the body passes max_body_bytes, or the deadline. Python parses and checks what was read with the
 * same reader as its own path (netobs.probes._http1), so this code only has to know where the response
 * ends, and hands over early whatever it cannot frame. Received bytes are stamped by the kernel
 * (SO_TIMESTAMPNS), and ttfb and transfer are timed as SocketStream times them. */

static const char HEX[] = "0123456789abcdef";

static void draw_ids(Engine *e, uint8_t *ids) {
    for (;;) {
        if (e->rand_used + 24 > sizeof(e->rand)) {
            if (getrandom(e->rand, sizeof(e->rand), 0) != (ssize_t)sizeof(e->rand)) {
                for (size_t i = 0; i < sizeof(e->rand); i++) e->rand[i] = (uint8_t)(rand_r(&e->seed) >> 7);
            }
            e->rand_used = 0;
        }
        memcpy(ids, e->rand + e->rand_used, 24);
        e->rand_used += 24;
        int trace_zero = 1, span_zero = 1; /* all-zero ids are invalid: draw again */
        for (int i = 0; i < 16; i++) trace_zero &= ids[i] == 0;
        for (int i = 16; i < 24; i++) span_zero &= ids[i] == 0;
        if (!trace_zero && !span_zero) return;
    }
}

static size_t line_end(const char *b, size_t from, size_t n) {
    const char *p = memchr(b + from, '\n', n - from);
    return p ? (size_t)(p - b) : n;
}

static int name_is(const char *line, size_t len, const char *name) {
    size_t k = strlen(name);
    return len > k && line[k] == ':' && strncasecmp(line, name, k) == 0;
}

/* The value of a field line (after "name:"), without surrounding blanks and CR. */
static void field_value(const char *line, size_t len, size_t name_len, const char **v, size_t *vlen) {
    const char *p = line + name_len + 1, *end = line + len;
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) end--;
    *v = p;
    *vlen = (size_t)(end - p);
}

#define MAX_HEAD_BYTES 16384 /* as _http1.MAX_HEAD_BYTES */

/* Whether the chunked body from ``p`` is complete, or has passed ``max_body`` (then Python says so). */
static int chunked_complete(const char *b, size_t p, size_t n, int64_t max_body) {
    int64_t body = 0;
    for (;;) {
        size_t eol = line_end(b, p, n);
        if (eol == n) return n - p > MAX_HEAD_BYTES;
        int64_t size = 0;
        size_t q = p, digits = 0;
        for (; q < eol && digits <= 16; q++, digits++) {
            char c = b[q];
            int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (v < 0) break;
            size = size * 16 + v;
        }
        if (digits == 0 || digits > 16) return 1; /* malformed: Python names it */
        p = eol + 1;
        if (size == 0) { /* trailer fields up to an empty line */
            for (;;) {
                eol = line_end(b, p, n);
                if (eol == n) return 0;
                int empty = eol == p || (eol == p + 1 && b[p] == '\r');
                p = eol + 1;
                if (empty) return 1;
            }
        }
        if ((int64_t)(n - p) < size + 2) return body + (int64_t)(n - p) > max_body;
        body += size;
        if (body > max_body) return 1;
        p += (size_t)size + 2;
    }
}

/* Whether what ``j`` has read is a whole response by its framing (RFC 9112 6.3), or something Python's
 * reader will refuse (a malformed head, too long a head, a body over the cap): either way, reading ends. */
static int response_complete(const Job *j) {
    const char *b = j->buf;
    size_t n = j->len, pos = 0, head_end, fields;
    int status;
    for (;;) {
        size_t p = pos;
        head_end = 0;
        while (p < n) { /* the blank line: "\n" then an optional "\r" and "\n" */
            size_t eol = line_end(b, p, n);
            if (eol == n) break;
            if (eol + 1 < n && b[eol + 1] == '\n') head_end = eol + 2;
            else if (eol + 2 < n && b[eol + 1] == '\r' && b[eol + 2] == '\n') head_end = eol + 3;
            if (head_end) break;
            p = eol + 1;
        }
        if (!head_end) return n - pos > MAX_HEAD_BYTES;
        if (head_end - pos > MAX_HEAD_BYTES + 4) return 1;
        if (head_end - pos < 12 || memcmp(b + pos, "HTTP/", 5) != 0 || b[pos + 8] != ' ') return 1;
        status = 0;
        for (int i = 9; i < 12; i++) {
            if (b[pos + i] < '0' || b[pos + i] > '9') return 1;
            status = status * 10 + (b[pos + i] - '0');
        }
        fields = line_end(b, pos, n) + 1;
        if (status >= 200 || status == 101) break;
        pos = head_end; /* an interim response: the real one follows */
    }
    if (status == 101 || j->http->head_request || status == 204 || status == 304) return 1;
    int64_t max_body = j->http->max_body_bytes, length = -1;
    int lengths = 0, codings = 0, chunked = 0;
    for (size_t p = fields; p < head_end;) {
        size_t eol = line_end(b, p, head_end), len = eol - p;
        const char *v;
        size_t vlen;
        if (name_is(b + p, len, "transfer-encoding")) {
            codings++;
            field_value(b + p, len, 17, &v, &vlen);
            chunked = vlen == 7 && strncasecmp(v, "chunked", 7) == 0;
        } else if (name_is(b + p, len, "content-length")) {
            lengths++;
            field_value(b + p, len, 14, &v, &vlen);
            length = 0;
            for (size_t i = 0; i < vlen && length >= 0; i++)
                length = v[i] >= '0' && v[i] <= '9' && length < INT64_MAX / 10 ? length * 10 + (v[i] - '0') : -1;
            if (vlen == 0) length = -1;
        }
        p = eol + 1;
    }
    int64_t body = (int64_t)(n - head_end);
    if (codings) return codings > 1 || !chunked || chunked_complete(b, head_end, n, max_body);
    if (lengths == 1 && length >= 0) return body >= length || body > max_body;
    return lengths ? 1 : body > max_body; /* no length: the body ends when the server closes */
}

static void rearm_socket(Engine *e, uint32_t id, uint32_t events) {
    Job *j = &e->jobs[id];
    struct epoll_event ev = {.events = events | EPOLLONESHOT, .data.u64 = ((uint64_t)j->run << 32) | id};
    if (epoll_ctl(e->epfd, EPOLL_CTL_MOD, j->fd, &ev) < 0) end_run(e, id, DONE, errno, -1);
}

static void exchange_send(Engine *e, uint32_t id) {
    Job *j = &e->jobs[id];
    Exchange *x = j->http;
    ssize_t n = send(j->fd, x->request + j->sent, x->request_len - j->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN) {
        end_run(e, id, DONE, errno, -1);
        return;
    }
    if (n > 0) j->sent += (size_t)n;
    rearm_socket(e, id, j->sent < x->request_len ? EPOLLOUT : EPOLLIN);
}

static void exchange_receive(Engine *e, uint32_t id) {
    Job *j = &e->jobs[id];
    for (;;) {
        /* most responses to a probe are small: start at 4 KiB, and double while they are not */
        if (j->cap - j->len < 1024 && grow((void **)&j->buf, &j->cap, j->cap ? j->cap * 2 : 4096, 1) < 0) {
            end_run(e, id, DONE, ENOMEM, -1);
            return;
        }
        char control[CMSG_SPACE(sizeof(struct timespec))];
        struct iovec iov = {.iov_base = j->buf + j->len, .iov_len = j->cap - j->len};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
        ssize_t n = recvmsg(j->fd, &msg, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN) rearm_socket(e, id, EPOLLIN);
            else end_run(e, id, DONE, errno, -1);
            return;
        }
        if (n == 0) { /* the server closed: Python decides whether the response was whole */
            end_run(e, id, DONE, 0, -1);
            return;
        }
        int64_t stamp = 0, now = clock_ns(CLOCK_MONOTONIC);
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(c), sizeof(ts));
                stamp = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
            }
        }
        if (j->stage == WAITING) {
            j->stage = RECEIVING;
            j->first_rx_mono_ns = now;
            j->first_rx_stamp_ns = stamp;
        }
        j->last_rx_mono_ns = now;
        j->last_rx_stamp_ns = stamp;
        j->len += (size_t)n;
        if (response_complete(j)) {
            end_run(e, id, DONE, 0, -1);
            return;
        }
    }
}

/* The connect of ``id``'s run ended (``events`` from epoll); an HTTP job goes on with its request. */
static void connected(Engine *e, uint32_t id, uint32_t events) {
    Job *j = &e->jobs[id];
    int err = 0;
    if (events & (EPOLLERR | EPOLLHUP)) {
        socklen_t len = sizeof(err);
        if (getsockopt(j->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (!err) err = ECONNRESET;
    }
    if (err || j->http == NULL) {
        end_run(e, id, DONE, err, err ? -1 : handshake_rtt_us(j->fd));
        return;
    }
    Exchange *x = j->http;
    j->rtt_us = handshake_rtt_us(j->fd);
    j->connect_ns = clock_ns(CLOCK_MONOTONIC) - j->start_mono_ns;
    if (x->traceparent_at >= 0) {
        char *tp = x->request + x->traceparent_at + 3; /* "00-" then 32 + 1 + 16 hex digits */
        for (int i = 0; i < 24; i++) {
            char *at = tp + 2 * i + (i >= 16);
            at[0] = HEX[j->ids[i] >> 4];
            at[1] = HEX[j->ids[i] & 15];
        }
    }
    j->stage = WAITING;
    j->tx_wall_ns = clock_ns(CLOCK_REALTIME);
    j->tx_mono_ns = clock_ns(CLOCK_MONOTONIC);
    exchange_send(e, id);
}

static void socket_ready(Engine *e, uint32_t id, uint32_t events) {
    Job *j = &e->jobs[id];
    if (j->stage == CONNECTING)
        connected(e, id, events);
    else if (j->stage == WAITING && j->sent < j->http->request_len)
        exchange_send(e, id);
    else
        exchange_receive(e, id);
}

/* -- runs ----------------------------------------------------------------------------------------- */

static void start_run(Engine *e, uint32_t id, int64_t slot, int64_t now) {
    Job *j = &e->jobs[id];
    j->slot_ns = slot;
    j->start_mono_ns = now;
    j->start_wall_ns = clock_ns(CLOCK_REALTIME);
    j->run++;
    j->stage = CONNECTING;
    j->sent = 0;
    j->tx_wall_ns = j->tx_mono_ns = j->first_rx_mono_ns = j->last_rx_mono_ns = 0;
    j->first_rx_stamp_ns = j->last_rx_stamp_ns = 0;
    if (j->http != NULL) draw_ids(e, j->ids); /* every run is a trace of its own, whatever its end */
    int fd = socket(j->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        complete(e, j, DONE, errno, clock_ns(CLOCK_MONOTONIC), -1);
        return;
    }
    j->fd = fd;
    int on = 1;
    if (j->http != NULL && setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on)) < 0) {
        end_run(e, id, DONE, errno, -1);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLONESHOT, .data.u64 = ((uint64_t)j->run << 32) | id};
    Event deadline = {.at_ns = now + j->timeout_ns, .job = id, .seq = j->run, .kind = DEADLINE};
    if (connect(fd, (struct sockaddr *)&j->addr, j->addrlen) < 0 && errno != EINPROGRESS && errno != EAGAIN) {
        end_run(e, id, DONE, errno, -1);
        return;
    }
    /* even a connect that completed at once is taken up from epoll, where the rest of the run waits */
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 || heap_push(e, deadline) < 0) {
        end_run(e, id, DONE, errno ? errno : ENOMEM, -1);
    }
}

static void slot_due(Engine *e, Event ev, int64_t now) {
    Job *j = &e->jobs[ev.job];
    if (!j->in_use || !j->active || j->gen != ev.seq) return; /* removed since */
    int64_t slot = j->next_slot_ns;
    j->next_slot_ns = slot + j->interval_ns;
    if (j->next_slot_ns <= now) {
        int64_t missed = (now - j->next_slot_ns) / j->interval_ns + 1;
        j->next_slot_ns += missed * j->interval_ns;
        queue(e, j->user_id, MISSED, (int)(missed > INT32_MAX ? INT32_MAX : missed), slot, now, 0, 0, -1);
    }
    Event next = {.at_ns = j->next_slot_ns, .job = ev.job, .seq = j->gen, .kind = SLOT};
    heap_push(e, next);
    int64_t lateness = now - slot;
    e->lateness_average_ns += (lateness - e->lateness_average_ns) * LATENESS_AVERAGE_WEIGHT;
    if (j->fd >= 0 || (lateness > j->shed_after_ns && e->lateness_average_ns > j->shed_after_ns / 2.0)) {
        queue(e, j->user_id, SKIPPED, 0, slot, now, 0, 0, -1);
        return;
    }
    start_run(e, ev.job, slot, now);
}

static void deadline_due(Engine *e, Event ev) {
    Job *j = &e->jobs[ev.job];
    if (j->fd < 0 || j->run != ev.seq) return; /* that run ended already */
    end_run(e, ev.job, TIMEOUT, ETIMEDOUT, -1);
}

static void due(Engine *e) {
    int64_t now = clock_ns(CLOCK_MONOTONIC);
    while (e->nheap && e->heap[0].at_ns <= now) {
        Event ev = heap_pop(e);
        if (ev.kind == SLOT)
            slot_due(e, ev, now);
        else
            deadline_due(e, ev);
    }
    rearm(e);
}

static void signal_ready(Engine *e) {
    if (e->ndone && !e->signalled) {
        uint64_t one = 1;
        if (write(e->wakefd, &one, sizeof(one)) == sizeof(one)) e->signalled = 1;
    }
}

static void *engine_main(void *arg) {
    Engine *e = (Engine *)arg;
    struct epoll_event events[256];
    pthread_setname_np(pthread_self(), "netobs-connect"); /* as top and /proc show it */
    pthread_mutex_lock(&e->mu);
    while (!e->stopping) {
        due(e);
        signal_ready(e);
        pthread_mutex_unlock(&e->mu);
        int n = epoll_wait(e->epfd, events, 256, -1);
        pthread_mutex_lock(&e->mu);
        for (int i = 0; i < n; i++) {
            uint64_t tag = events[i].data.u64;
            if (tag == TIMER_TAG || tag == CONTROL_TAG) {
                uint64_t count;
                if (read(tag == TIMER_TAG ? e->timerfd : e->controlfd, &count, sizeof(count)) < 0) {
                    /* nothing to read: a spurious wake-up */
                }
                if (tag == TIMER_TAG) e->armed_ns = 0;
                continue;
            }
            uint32_t id = (uint32_t)tag, run = (uint32_t)(tag >> 32);
            if (id < e->njobs && e->jobs[id].fd >= 0 && e->jobs[id].run == run) socket_ready(e, id, events[i].events);
        }
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* -- the Python type ------------------------------------------------------------------------------ */

static void wake(Engine *e) {
    uint64_t one = 1;
    if (write(e->controlfd, &one, sizeof(one)) < 0) {
        /* the counter is saturated: the thread has a wake-up pending anyway */
    }
}

static int watch(int epfd, int fd, uint64_t tag) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static PyObject *Engine_new(PyTypeObject *type, PyObject *Py_UNUSED(args), PyObject *Py_UNUSED(kwds)) {
    Engine *e = (Engine *)type->tp_alloc(type, 0);
    if (e != NULL) {
        e->epfd = e->timerfd = e->wakefd = e->controlfd = -1;
        e->rand_used = sizeof(e->rand); /* empty: the first draw fills it */
        e->seed = (unsigned)clock_ns(CLOCK_MONOTONIC) ^ (unsigned)getpid();
    }
    return (PyObject *)e;
}

static int Engine_init(Engine *e, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "", kwlist)) return -1;
    if (e->epfd >= 0) {
        PyErr_SetString(PyExc_RuntimeError, "ConnectEngine is already initialised");
        return -1;
    }
    pthread_mutex_init(&e->mu, NULL);
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    e->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    e->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    e->controlfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->epfd < 0 || e->timerfd < 0 || e->wakefd < 0 || e->controlfd < 0 ||
        watch(e->epfd, e->timerfd, TIMER_TAG) < 0 || watch(e->epfd, e->controlfd, CONTROL_TAG) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    int rc = pthread_create(&e->thread, NULL, engine_main, e);
    if (rc) {
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    e->thread_started = 1;
    return 0;
}

static void stop_thread(Engine *e) {
    if (!e->thread_started) return;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    wake(e);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    Py_END_ALLOW_THREADS
    e->thread_started = 0;
    for (uint32_t i = 0; i < e->njobs; i++) {
        if (e->jobs[i].fd >= 0) close(e->jobs[i].fd);
        e->jobs[i].fd = -1;
        free(e->jobs[i].buf);
        e->jobs[i].buf = NULL;
        e->jobs[i].len = e->jobs[i].cap = 0;
    }
}

static void Engine_dealloc(Engine *e) {
    stop_thread(e);
    int *fds[] = {&e->epfd, &e->timerfd, &e->wakefd, &e->controlfd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (*fds[i] >= 0) close(*fds[i]);
    if (e->epfd >= 0) pthread_mutex_destroy(&e->mu);
    for (uint32_t i = 0; i < e->njobs; i++) free_exchange(e->jobs[i].http);
    for (size_t i = 0; i < e->ndone; i++) free(e->done[i].response);
    free(e->jobs);
    free(e->free_ids);
    free(e->heap);
    free(e->done);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static PyObject *closed_error(void) {
    PyErr_SetString(PyExc_RuntimeError, "ConnectEngine is closed");
    return NULL;
}

static PyObject *Engine_add(Engine *e, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"user_id", "family", "packed_address", "port", "first_slot_s", "interval_s", "timeout_s",
                             "shed_after_s", "request", "traceparent_at", "max_body_bytes", "head_request", NULL};
    long long user_id;
    int family;
    Py_buffer packed;
    int port;
    double first_slot_s, interval_s, timeout_s, shed_after_s;
    Py_buffer request = {.buf = NULL, .len = 0};
    long traceparent_at = -1;
    long long max_body_bytes = 0;
    int head_request = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Liy*idddd|z*lLp", kwlist, &user_id, &family, &packed, &port,
                                     &first_slot_s, &interval_s, &timeout_s, &shed_after_s, &request, &traceparent_at,
                                     &max_body_bytes, &head_request))
        return NULL;
    Exchange *http = NULL;
    if (request.buf != NULL) {
        int bad = request.len == 0 || max_body_bytes < 0 ||
                  (traceparent_at >= 0 && (traceparent_at + 55 > request.len ||
                                           memcmp((char *)request.buf + traceparent_at, "00-", 3) != 0));
        if (!bad) {
            http = calloc(1, sizeof(Exchange));
            if (http != NULL) http->request = malloc((size_t)request.len);
            if (http == NULL || http->request == NULL) {
                free(http);
                PyBuffer_Release(&request);
                PyBuffer_Release(&packed);
                return PyErr_NoMemory();
            }
            memcpy(http->request, request.buf, (size_t)request.len);
            http->request_len = (size_t)request.len;
            http->traceparent_at = traceparent_at;
            http->max_body_bytes = max_body_bytes;
            http->head_request = head_request;
        }
        PyBuffer_Release(&request);
        if (bad) {
            PyBuffer_Release(&packed);
            PyErr_SetString(PyExc_ValueError,
                            "request: not empty; traceparent_at: -1 or the offset of a 55-character \"00-...\" value "
                            "in it; max_body_bytes >= 0");
            return NULL;
        }
    }
    struct sockaddr_storage addr;
    socklen_t addrlen;
    memset(&addr, 0, sizeof(addr));
    if (family == AF_INET && packed.len == 4) {
        struct sockaddr_in *a = (struct sockaddr_in *)&addr;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        memcpy(&a->sin_addr, packed.buf, 4);
        addrlen = sizeof(*a);
    } else if (family == AF_INET6 && packed.len == 16) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        memcpy(&a->sin6_addr, packed.buf, 16);
        addrlen = sizeof(*a);
    } else {
        PyBuffer_Release(&packed);
        free_exchange(http);
        PyErr_SetString(PyExc_ValueError, "address: 4 bytes for AF_INET or 16 for AF_INET6");
        return NULL;
    }
    PyBuffer_Release(&packed);
    if (port < 1 || port > 65535 || !(interval_s > 0) || !(timeout_s > 0) || !(shed_after_s >= 0)) {
        free_exchange(http);
        PyErr_SetString(PyExc_ValueError, "port 1-65535, interval_s > 0, timeout_s > 0, shed_after_s >= 0");
        return NULL;
    }
    if (!e->thread_started) {
        free_exchange(http);
        return closed_error();
    }
    long id = -1;
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&e->mu);
    uint32_t slot_id;
    if (e->nfree) {
        slot_id = e->free_ids[--e->nfree];
    } else if (grow((void **)&e->jobs, &e->jobs_cap, e->njobs + 1, sizeof(Job)) == 0) {
        slot_id = e->njobs++;
        e->jobs[slot_id].gen = 0;
        e->jobs[slot_id].run = 0;
    } else {
        slot_id = UINT32_MAX;
    }
    if (slot_id != UINT32_MAX) {
        Job *j = &e->jobs[slot_id];
        j->addr = addr;
        j->addrlen = addrlen;
        j->user_id = user_id;
        j->http = http;
        http = NULL;
        j->buf = NULL;
        j->len = j->cap = 0;
        j->interval_ns = (int64_t)(interval_s * 1e9);
        j->timeout_ns = (int64_t)(timeout_s * 1e9);
        j->shed_after_ns = (int64_t)(shed_after_s * 1e9);
        j->next_slot_ns = (int64_t)(first_slot_s * 1e9);
        j->slot_ns = j->start_mono_ns = j->start_wall_ns = 0;
        j->fd = -1;
        j->in_use = 1;
        j->active = 1;
        Event ev = {.at_ns = j->next_slot_ns, .job = slot_id, .seq = j->gen, .kind = SLOT};
        if (heap_push(e, ev) < 0) {
            failed = 1;
        } else {
            id = slot_id;
            if (e->heap[0].job == slot_id && e->heap[0].at_ns == ev.at_ns) rearm(e);
        }
    }
    pthread_mutex_unlock(&e->mu);
    Py_END_ALLOW_THREADS
    free_exchange(http); /* not taken: no memory for the job */
    if (id < 0 || failed) return PyErr_NoMemory();
    return PyLong_FromLong(id);
}

static PyObject *Engine_remove(Engine *e, PyObject *arg) {
    long id = PyLong_AsLong(arg);
    if (id == -1 && PyErr_Occurred()) return NULL;
    if (!e->thread_started) return closed_error();
    int ok = 0;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&e->mu);
    if (id >= 0 && (uint32_t)id < e->njobs && e->jobs[id].in_use && e->jobs[id].active) {
        e->jobs[id].active = 0;
        release_if_done(e, (uint32_t)id);
        signal_ready(e);
        ok = 1;
    }
    pthread_mutex_unlock(&e->mu);
    Py_END_ALLOW_THREADS
    if (!ok) {
        PyErr_Format(PyExc_KeyError, "no scheduled job %ld", id);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* -- the response, parsed when it is plain ----------------------------------------------------------
 *
 * Most responses to a probe are plain: a final status line, field lines, CRLF line ends, the body framed by
 * one Content-Length (or by the close), within the caps. For those, drain hands Python what
 * netobs.probes._http1.parse_response would give: (peer's version, status, [(lower-case name, value)],
 * body), values decoded as Latin-1 without surrounding blanks. Anything else (interim responses, chunked
 * bodies, obsolete folding, bare LF, a malformed head, conflicting or missing lengths, a body over the cap)
 * goes to Python as bytes, and its reader parses it or names what is wrong. tests/unit/test_connect_parse.py
 * holds the two to the same answers. */

static int is_tchar(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_reason_char(unsigned char c) { return c == '\t' || (c > 0x1f && c != 0x7f); }

static PyObject *plain_response(const char *b, size_t n, int head_request, int64_t max_body) {
    const char *end = NULL;
    for (size_t i = 0; i + 3 < n; i++) {
        if (b[i] == '\r' && b[i + 1] == '\n' && b[i + 2] == '\r' && b[i + 3] == '\n') {
            end = b + i;
            break;
        }
        if ((b[i] == '\n' && (i == 0 || b[i - 1] != '\r')) || (b[i] == '\r' && b[i + 1] != '\n'))
            return Py_NewRef(Py_None); /* a bare LF or CR */
    }
    if (end == NULL || end - b > MAX_HEAD_BYTES) return Py_NewRef(Py_None);
    /* the status line: HTTP/d.d ddd[ reason] */
    const char *eol = memchr(b, '\r', (size_t)(end - b) + 1);
    if (eol - b < 12 || memcmp(b, "HTTP/", 5) != 0 || !isdigit((unsigned char)b[5]) || b[6] != '.' ||
        !isdigit((unsigned char)b[7]) || b[8] != ' ')
        return Py_NewRef(Py_None);
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (!isdigit((unsigned char)b[i])) return Py_NewRef(Py_None);
        status = status * 10 + (b[i] - '0');
    }
    if (eol - b > 12 && b[12] != ' ') return Py_NewRef(Py_None);
    for (const char *p = b + 13; p < eol; p++)
        if (!is_reason_char((unsigned char)*p)) return Py_NewRef(Py_None);
    if (status < 200) return Py_NewRef(Py_None);
    PyObject *fields = PyList_New(0);
    if (fields == NULL) return NULL;
    int lengths = 0, codings = 0;
    int64_t length = -1;
    for (const char *line = eol + 2; line < end;) {
        const char *le = memchr(line, '\r', (size_t)(end - line) + 1);
        const char *colon = line;
        while (colon < le && is_tchar((unsigned char)*colon)) colon++;
        if (colon == line || colon == le || *colon != ':') goto not_plain;
        const char *v = colon + 1, *ve = le;
        while (v < ve && (*v == ' ' || *v == '\t')) v++;
        for (const char *p = v; p < ve; p++)
            if (*p == 0 || *p == '\n') goto not_plain;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        char name[256];
        size_t name_len = (size_t)(colon - line);
        if (name_len >= sizeof(name)) goto not_plain;
        for (size_t i = 0; i < name_len; i++) name[i] = (char)tolower((unsigned char)line[i]);
        if (name_len == 17 && memcmp(name, "transfer-encoding", 17) == 0) codings++;
        if (name_len == 14 && memcmp(name, "content-length", 14) == 0) {
            lengths++;
            length = ve > v ? 0 : -1;
            for (const char *p = v; p < ve && length >= 0; p++)
                length = isdigit((unsigned char)*p) && length < INT64_MAX / 10 ? length * 10 + (*p - '0') : -1;
        }
        PyObject *field = Py_BuildValue("(s#N)", name, (Py_ssize_t)name_len,
                                        PyUnicode_DecodeLatin1(v, (Py_ssize_t)(ve - v), NULL));
        if (field == NULL || PyList_Append(fields, field) < 0) {
            Py_XDECREF(field);
            Py_DECREF(fields);
            return NULL;
        }
        Py_DECREF(field);
        line = le + 2;
    }
    const char *body = end + 4;
    int64_t available = (int64_t)(b + n - body), body_len;
    if (head_request || status == 204 || status == 304) {
        body_len = 0;
    } else if (codings || lengths > 1 || (lengths == 1 && (length < 0 || length > available))) {
        goto not_plain;
    } else {
        body_len = lengths ? length : available;
    }
    if (body_len > max_body) goto not_plain;
    return Py_BuildValue("(s#iNy#)", b + 5, (Py_ssize_t)3, status, fields, body, (Py_ssize_t)body_len);
not_plain:
    Py_DECREF(fields);
    return Py_NewRef(Py_None);
}

static PyObject *parse_plain(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer data;
    long long max_body_bytes;
    int head_request;
    if (!PyArg_ParseTuple(args, "y*Lp", &data, &max_body_bytes, &head_request)) return NULL;
    PyObject *out = plain_response(data.buf, (size_t)data.len, head_request, max_body_bytes);
    PyBuffer_Release(&data);
    return out;
}

static PyObject *Engine_drain(Engine *e, PyObject *Py_UNUSED(ignored)) {
    Completion *taken = NULL;
    size_t n = 0;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&e->mu);
    uint64_t count;
    if (read(e->wakefd, &count, sizeof(count)) < 0) {
        /* not signalled: nothing to clear */
    }
    e->signalled = 0;
    if (e->ndone) {
        taken = e->done;
        n = e->ndone;
        e->done = NULL;
        e->ndone = e->done_cap = 0;
    }
    pthread_mutex_unlock(&e->mu);
    Py_END_ALLOW_THREADS
    PyObject *out = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; out != NULL && i < n; i++) {
        Completion *c = &taken[i];
        PyObject *item;
        if (!c->http) {
            item = Py_BuildValue("(LiiLLLLLiLLLLOO)", (long long)c->user_id, c->kind, c->err, (long long)c->slot_ns,
                                 (long long)c->start_mono_ns, (long long)c->start_wall_ns, (long long)c->elapsed_ns,
                                 (long long)c->rtt_us, 0, 0LL, 0LL, 0LL, 0LL, Py_None, Py_None);
        } else {
            PyObject *response = c->kind == DONE && !c->err && c->stage == RECEIVING
                                     ? plain_response(c->response, c->response_len, c->head_request, c->max_body_bytes)
                                     : Py_NewRef(Py_None);
            if (response == Py_None) {
                Py_DECREF(response);
                response = PyBytes_FromStringAndSize(c->response, (Py_ssize_t)c->response_len);
            }
            item = response == NULL ? NULL
                                    : Py_BuildValue("(LiiLLLLLiLLLLy#N)", (long long)c->user_id, c->kind, c->err,
                                                    (long long)c->slot_ns, (long long)c->start_mono_ns,
                                                    (long long)c->start_wall_ns, (long long)c->elapsed_ns,
                                                    (long long)c->rtt_us, c->stage, (long long)c->connect_ns,
                                                    (long long)c->tx_wall_ns, (long long)c->ttfb_ns,
                                                    (long long)c->transfer_ns, (const char *)c->ids,
                                                    (Py_ssize_t)sizeof(c->ids), response);
        }
        if (item == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, (Py_ssize_t)i, item);
    }
    for (size_t i = 0; i < n; i++) free(taken[i].response);
    free(taken);
    return out;
}

static PyObject *Engine_fileno(Engine *e, PyObject *Py_UNUSED(ignored)) { return PyLong_FromLong(e->wakefd); }

static PyObject *Engine_close(Engine *e, PyObject *Py_UNUSED(ignored)) {
    stop_thread(e);
    Py_RETURN_NONE;
}

static PyMethodDef Engine_methods[] = {
    {"add", (PyCFunction)(void (*)(void))Engine_add, METH_VARARGS | METH_KEYWORDS,
     "add(user_id, family, packed_address, port, first_slot_s, interval_s, timeout_s, shed_after_s, request=None, "
     "traceparent_at=-1, max_body_bytes=0, head_request=False) -> handle"},
    {"remove", (PyCFunction)Engine_remove, METH_O, "remove(handle): no more runs; the current one completes"},
    {"drain", (PyCFunction)Engine_drain, METH_NOARGS, "drain() -> the completions queued since the last drain"},
    {"fileno", (PyCFunction)Engine_fileno, METH_NOARGS, "the eventfd that turns readable when drain has some"},
    {"close", (PyCFunction)Engine_close, METH_NOARGS, "stop the thread; runs in flight are abandoned"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "netobs._connect.ConnectEngine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "TCP connect runs scheduled, issued and timed by a thread of their own (see the module's doc).",
    .tp_new = Engine_new,
    .tp_init = (initproc)Engine_init,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
};

static PyMethodDef module_methods[] = {
    {"parse_plain", parse_plain, METH_VARARGS,
     "parse_plain(data, max_body_bytes, head_request) -> (version, status, fields, body) of a plain response "
     "(see _connect.c), or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_methods = module_methods,
    .m_name = "netobs._connect",
    .m_doc = "TCP connect runs in a thread of their own (see _connect.c).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__connect(void) {
    if (PyType_Ready(&EngineType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(m, "ConnectEngine", (PyObject *)&EngineType) < 0 ||
        PyModule_AddIntConstant(m, "DONE", DONE) < 0 || PyModule_AddIntConstant(m, "TIMEOUT", TIMEOUT) < 0 ||
        PyModule_AddIntConstant(m, "SKIPPED", SKIPPED) < 0 || PyModule_AddIntConstant(m, "MISSED", MISSED) < 0 ||
        PyModule_AddIntConstant(m, "RELEASED", RELEASED) < 0 || PyModule_AddIntConstant(m, "CONNECTING", CONNECTING) < 0 ||
        PyModule_AddIntConstant(m, "WAITING", WAITING) < 0 || PyModule_AddIntConstant(m, "RECEIVING", RECEIVING) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
