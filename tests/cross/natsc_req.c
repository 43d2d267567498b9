/*
 * natsc_req.c - one request over the bus with nats.c, the official NATS C client
 * (Debian libnats-dev), for the cross smoke test (tests/cross/test_smoke.py): the
 * emulated gateway is driven by a client nobody here wrote. Built for the host.
 *
 *   natsc_req URL SUBJECT PAYLOAD [TIMEOUT_MS]
 *
 * Prints the reply's payload and a newline on stdout and exits 0; exits 1 when it
 * cannot connect or the request fails, 3 on a timeout, 4 when nobody answers (no
 * responders), 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

int main(int argc, char **argv)
{
	natsOptions *o = NULL;
	natsConnection *nc = NULL;
	natsMsg *m = NULL;
	natsStatus s;
	int timeout;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: natsc_req URL SUBJECT PAYLOAD [TIMEOUT_MS]\n");
		return 2;
	}
	timeout = argc == 5 ? atoi(argv[4]) : 10000;
	if (timeout <= 0)
		timeout = 10000;
	s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetURL(o, argv[1]);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, timeout);
	if (s == NATS_OK)
		s = natsConnection_Connect(&nc, o);
	if (s != NATS_OK) {
		fprintf(stderr, "natsc_req: connect to %s: %s\n", argv[1], natsStatus_GetText(s));
		natsOptions_Destroy(o);
		return 1;
	}
	s = natsConnection_RequestString(&m, nc, argv[2], argv[3], timeout);
	if (s == NATS_OK) {
		fwrite(natsMsg_GetData(m), 1, (size_t)natsMsg_GetDataLength(m), stdout);
		putchar('\n');
		natsMsg_Destroy(m);
	} else {
		fprintf(stderr, "natsc_req: request on %s: %s\n", argv[2], natsStatus_GetText(s));
	}
	natsConnection_Destroy(nc);
	natsOptions_Destroy(o);
	nats_Close();
	if (s == NATS_OK)
		return 0;
	return s == NATS_TIMEOUT ? 3 : s == NATS_NO_RESPONDERS ? 4 : 1;
}
