#!/bin/bash
# The measurement matrix: N runs of S seconds per configuration, 2 CPU hogs (a loaded 2-core box).
N=${N:-10}; S=${S:-5}
for v in sock foreign timer; do
  for p in 1 2 default; do ./run.sh $N m-$v-p$p variant=$v preempt_ms=$p secs=$S tasks=4 hogs=2; done
  ./run.sh $N m-$v-p2-tick10 variant=$v preempt_ms=2 tick_ms=10 secs=$S tasks=4 hogs=2
  ./run.sh $N m-$v-p10000 variant=$v preempt_ms=10000 secs=$S tasks=4 hogs=2
done
./run.sh $N m-sock-p2-spin1ms variant=sock preempt_ms=2 spin_us=1000 secs=$S hogs=2
./run.sh $N m-sock-p2-nohog variant=sock preempt_ms=2 secs=$S
