# bench/plot.gp - the figures of BENCHMARKS.md, drawn from the series that
# bench/run cuts out of bench/results/latest.tsv. A series whose rows were
# not measured (iceoryx not installed) is an empty file: gnuplot warns and
# draws the others.
#   gnuplot -e "datadir='...'; outdir='...'; machine='...'" bench/plot.gp

set terminal pngcairo size 1100,700 font "DejaVu Sans,11" noenhanced
set grid
set key outside right top

# ------------------------------------------------ latency vs message size
set output outdir."/latency.png"
set title "One-way latency (round trip / 2), median, two processes on two pinned cores\n".machine font ",10"
set logscale xy
set xlabel "message size"
set ylabel "ns (log)"
set xtics ("64 B" 64, "4 KiB" 4096, "64 KiB" 65536, "1 MiB" 1048576, "8 MiB" 8388608)
set format y "%.0s%c"
plot datadir."/bus_poll_take.dat" using 1:2 with linespoints lw 2 pt 7 title "bus: poll, take (copy)", \
     datadir."/bus_poll_view.dat" using 1:2 with linespoints lw 2 pt 5 title "bus: poll, zero-copy view", \
     datadir."/bus_wait.dat" using 1:2 with linespoints lw 2 pt 9 title "bus: shmbus_sub_wait", \
     datadir."/bus_spinwait.dat" using 1:2 with linespoints lw 2 pt 11 title "bus: shmbus_sub_wait, spin 50 us", \
     datadir."/bus_poll_write.dat" using 1:2 with linespoints lw 2 pt 13 title "bus: poll, view; sender writes all (default layout)", \
     datadir."/bus_wait_write.dat" using 1:2 with linespoints lw 2 pt 15 title "bus: wait, view; sender writes all (default layout)", \
     datadir."/iox_poll.dat" using 1:2 with linespoints dt 3 lw 2 pt 13 title "iceoryx: poll, take; sender writes all", \
     datadir."/iox_wait.dat" using 1:2 with linespoints dt 3 lw 2 pt 15 title "iceoryx: wait set, take; sender writes all", \
     datadir."/floor_shm_poll.dat" using 1:2 with linespoints dt 2 pt 6 title "floor: shm + atomics, polling", \
     datadir."/floor_futex.dat" using 1:2 with linespoints dt 2 pt 8 title "floor: shm + futex", \
     datadir."/unix_socket.dat" using 1:2 with linespoints dt 3 pt 4 title "Unix socket pair", \
     datadir."/pipe.dat" using 1:2 with linespoints dt 3 pt 12 title "pipe", \
     datadir."/memcpy.dat" using 1:2 with linespoints dt 4 pt 1 title "memcpy (one copy)"

# ------------------------------------------------------------- fan-out
reset
set terminal pngcairo size 1100,700 font "DejaVu Sans,11" noenhanced
set output outdir."/fanout.png"
set grid
set key outside right top
set title "Fan-out: one publisher (core A), N subscribers asleep in shmbus_sub_wait (all on core B), 64 B\n".machine font ",10"
set logscale x 2
set logscale y
set xlabel "subscribers"
set xtics (1, 2, 4, 8, 16)
set xrange [0.8:20]
set ylabel "messages/s (log)"
set format y "%.0s%c"
set y2label "publish-to-take latency, median (us)"
set y2tics
set logscale y2
plot datadir."/fanout_alone.dat" using 1:2 with lines dt 2 lw 2 title "publisher alone (no subscriber)", \
     datadir."/fanout_pub.dat" using 1:2 with linespoints lw 2 pt 7 title "publisher rate", \
     datadir."/fanout_sub.dat" using 1:2 with linespoints lw 2 pt 5 title "delivered per subscriber", \
     datadir."/fanout_lat.dat" using 1:($2/1000) axes x1y2 with linespoints dt 2 pt 9 title "latency (right axis)"

# ---------------------------------------------------------- throughput
reset
set terminal pngcairo size 1500,700 font "DejaVu Sans,11" noenhanced
set output outdir."/throughput.png"
set multiplot layout 1,3 title "Streaming, one producer on core A, one consumer on core B (median of passes)\n".machine font ",10"
set grid y
set style fill solid 0.6
set boxwidth 0.6
set xtics rotate by -30 noenhanced
set ylabel "messages/s"
set format y "%.0s%c"
set title "64 B messages"
plot datadir."/tput64.dat" using 0:2:xtic(1) with boxes notitle
set ylabel "GB/s"
set format y "%g"
set title "1 MiB messages"
plot datadir."/tput1m.dat" using 0:2:xtic(1) with boxes notitle
set title "8 MiB messages"
plot datadir."/tput8m.dat" using 0:2:xtic(1) with boxes notitle
unset multiplot

# ----------------------------------------------------- slow subscriber
reset
set terminal pngcairo size 1100,700 font "DejaVu Sans,11" noenhanced
set output outdir."/slow.png"
set grid
set key outside right top
set title "A subscriber holding each view for a fixed time vs its publisher's rate (default layout)\n".machine font ",10"
set logscale x
set xlabel "publisher rate / subscriber capacity (1 / hold time)"
set xtics (0.5, 1, 2, 5, 10, 20, 50, 100)
set xrange [0.4:130]
set ylabel "delivered (views that stayed valid) / measured capacity"
set yrange [0:1.3]
set y2label "views started that stayed valid (%)"
set y2range [0:130]
set y2tics
plot (x < 1 ? x : 1) with lines dt 2 lc rgb "gray" title "ideal: min(rate, capacity)", \
     datadir."/slow_64.dat" using 1:2 with linespoints lw 2 pt 7 title "64 B: delivered", \
     datadir."/slow_1048576.dat" using 1:2 with linespoints lw 2 pt 5 title "1 MiB: delivered", \
     datadir."/slow_64.dat" using 1:3 axes x1y2 with linespoints dt 3 pt 6 title "64 B: valid share (right)", \
     datadir."/slow_1048576.dat" using 1:3 axes x1y2 with linespoints dt 3 pt 4 title "1 MiB: valid share (right)"
