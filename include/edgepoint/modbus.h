/*
 * modbus.h - the Modbus module: `modbus` nodes (a bus: one TCP server or one serial
 * line) and their `modbusIo` children (one value each), polled as a client or
 * served as a server (DESIGN.md, "Field I/O"; docs/modbus.md explains every point).
 *
 * libmodbus is blocking, so each bus runs on its own worker thread and hands its
 * results to the loop through a uv_async handle; the loop never calls into the
 * device. The module finds its nodes with node queries (children of the device and
 * of groups), follows p.<node> and e.<node>.<parent> on the bus for runtime changes,
 * and publishes what it reads as points (value, errorCount, lastError on IOs;
 * connected, errorCount, lastError, requestsPerCycle on buses).
 *
 * Threads: every function here runs on the loop thread.
 */
#ifndef EDGEPOINT_MODBUS_H
#define EDGEPOINT_MODBUS_H

#include <uv.h>

#include "edgepoint/core.h"

struct bus;
struct api;
struct modbus;
struct config_node;

/*
 * Reserves the descriptor numbers below FD_SETSIZE that libmodbus needs (it waits
 * with select(); see lowfd.h) for the buses in a configuration tree: one per
 * client bus and RTU server, one per master a TCP server may serve, and a few
 * spare. Call it when the daemon starts, before any listener accepts. Logs what it
 * could not reserve.
 */
void modbus_reserve_fds(const struct config_node *nodes, size_t n);

/*
 * Subscribes to node changes and starts the discovery of the modbus nodes under
 * device_id (their buses start as their nodes arrive). Returns 0 or a negative
 * EP_E* code (a bus subscription failed).
 */
int modbus_start(uv_loop_t *loop, struct bus *bus, struct api *api, const char *device_id,
		 struct modbus **out);

/*
 * Stops every bus: workers are told to end (a blocking request in progress ends at
 * its timeout at the latest), and the loop runs until their handles are closed.
 * Call it before api_stop(), not from a loop callback. NULL is ignored.
 */
void modbus_stop(struct modbus *m);

#endif
