#!/bin/bash
# usage: run.sh N tag args...   -> runs N times, prints stalls/N, keeps stall logs in logs/
ulimit -l unlimited 2>/dev/null
n=$1; tag=$2; shift 2; mkdir -p logs; st=0
for i in $(seq 1 $n); do
  timeout 60 ./target/release/wakeup-repro "$@" > logs/$tag.$i.txt 2>&1; rc=$?
  if [ $rc -ne 0 ]; then st=$((st+1)); else rm -f logs/$tag.$i.txt; fi
done
echo "$tag: $* -> stalls $st/$n"
