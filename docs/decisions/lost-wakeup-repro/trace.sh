#!/bin/bash
# trace.sh args... : run once with io_uring tracepoints recorded; trace left in logs/trace.txt
T=/sys/kernel/tracing
ulimit -l unlimited 2>/dev/null
echo 0 > $T/tracing_on; echo > $T/trace; echo 65536 > $T/buffer_size_kb
echo > $T/set_event
for e in io_uring_create io_uring_submit_req io_uring_complete io_uring_poll_arm io_uring_task_add io_uring_cqring_wait io_uring_req_failed io_uring_link io_uring_fail_link; do true; done; for e in io_uring_create io_uring_submit_req io_uring_complete io_uring_task_add io_uring_cqring_wait; do echo io_uring:$e >> $T/set_event; done
echo sched:sched_switch >> $T/set_event; echo "prev_comm ~ \"exec*\" || next_comm ~ \"exec*\"" > $T/events/sched/sched_switch/filter
echo 1 > $T/tracing_on
timeout 60 ./target/release/wakeup-repro "$@" > logs/traced.txt 2>&1; rc=$?
echo 0 > $T/tracing_on
cat $T/trace > logs/trace.txt; echo 0 > $T/events/sched/sched_switch/filter; echo > $T/set_event; echo 1408 > $T/buffer_size_kb; echo > $T/trace
echo rc=$rc; head -3 logs/traced.txt; wc -l logs/trace.txt
