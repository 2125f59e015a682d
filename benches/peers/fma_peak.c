/* The core's f32 FMA peak, measured: ten independent chains of 256-bit
 * vfmadd231ps (enough to cover 4-cycle latency on two FMA pipes), so the
 * loop runs at the pipes' throughput. Prints GFLOP/s and the clock that
 * implies at 32 flop/cycle (2 pipes x 8 lanes x 2 flop), the Zen 3 figure;
 * on a core with other widths read the GFLOP/s only. x86-64 with AVX2+FMA.
 * Build and run: cc -O2 fma_peak.c -o fma_peak && taskset -c 0 ./fma_peak */
#include <stdio.h>
#include <time.h>
int main(){
  long iters=400000000; struct timespec t0,t1; clock_gettime(CLOCK_MONOTONIC,&t0);
  __asm__ volatile(
   "vxorps %%ymm0,%%ymm0,%%ymm0\n vxorps %%ymm1,%%ymm1,%%ymm1\n vxorps %%ymm2,%%ymm2,%%ymm2\n vxorps %%ymm3,%%ymm3,%%ymm3\n"
   "vxorps %%ymm4,%%ymm4,%%ymm4\n vxorps %%ymm5,%%ymm5,%%ymm5\n vxorps %%ymm6,%%ymm6,%%ymm6\n vxorps %%ymm7,%%ymm7,%%ymm7\n"
   "vxorps %%ymm8,%%ymm8,%%ymm8\n vxorps %%ymm9,%%ymm9,%%ymm9\n"
   "1:\n"
   "vfmadd231ps %%ymm14,%%ymm15,%%ymm0\n vfmadd231ps %%ymm14,%%ymm15,%%ymm1\n vfmadd231ps %%ymm14,%%ymm15,%%ymm2\n vfmadd231ps %%ymm14,%%ymm15,%%ymm3\n"
   "vfmadd231ps %%ymm14,%%ymm15,%%ymm4\n vfmadd231ps %%ymm14,%%ymm15,%%ymm5\n vfmadd231ps %%ymm14,%%ymm15,%%ymm6\n vfmadd231ps %%ymm14,%%ymm15,%%ymm7\n"
   "vfmadd231ps %%ymm14,%%ymm15,%%ymm8\n vfmadd231ps %%ymm14,%%ymm15,%%ymm9\n"
   "dec %0\n jnz 1b\n" : "+r"(iters) :: "xmm0","xmm1","xmm2","xmm3","xmm4","xmm5","xmm6","xmm7","xmm8","xmm9","cc");
  clock_gettime(CLOCK_MONOTONIC,&t1);
  double s=(t1.tv_sec-t0.tv_sec)+(t1.tv_nsec-t0.tv_nsec)*1e-9;
  double fl=400000000.0*10*16;
  printf("%.1f GFLOP/s  (%.3f s) -> %.2f GHz at 32 flop/cycle\n", fl/s*1e-9, s, fl/s*1e-9/32);
}
