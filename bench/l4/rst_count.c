/* rst_count.c — LD_PRELOAD shim for bench/l4/profile_one.sh TOOL=rst: counts the RST_STREAM frames a process
 * submits through libnghttp2, by error code; SIGUSR2 prints the counts to stderr. Diagnosis only. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

static atomic_long counts[16];

int nghttp2_submit_rst_stream(void* session, uint8_t flags, int32_t stream_id, uint32_t error_code) {
  static int (*real)(void*, uint8_t, int32_t, uint32_t);
  if (!real) real = (int (*)(void*, uint8_t, int32_t, uint32_t))dlsym(RTLD_NEXT, "nghttp2_submit_rst_stream");
  atomic_fetch_add(&counts[error_code < 15 ? error_code : 15], 1);
  return real(session, flags, stream_id, error_code);
}

static void dump(int sig) {
  (void)sig;
  char buf[256];
  int n = snprintf(buf, sizeof buf, "rst_stream submitted: NO_ERROR=%ld PROTOCOL=%ld INTERNAL=%ld REFUSED=%ld CANCEL=%ld other=%ld\n",
                   (long)counts[0], (long)counts[1], (long)counts[2], (long)counts[7], (long)counts[8],
                   (long)(counts[3] + counts[4] + counts[5] + counts[6] + counts[9] + counts[10] + counts[11] +
                          counts[12] + counts[13] + counts[14] + counts[15]));
  if (n > 0) (void)!write(2, buf, (size_t)n);
}

__attribute__((constructor)) static void init(void) { signal(SIGUSR2, dump); }
