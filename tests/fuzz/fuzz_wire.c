/* fuzz_wire.c: libFuzzer target for the wire decoder. Every byte string a
 * peer can send goes through the same path as in the coordinator and the
 * worker: unpack an Envelope, then check its version and bounds. Neither
 * may crash, leak or read out of bounds, whatever the bytes. */
#include <stddef.h>
#include <stdint.h>

#include "common/transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > KILN_MSG_MAX)
        return 0;
    Kiln__Envelope *env = kiln__envelope__unpack(NULL, size, data);
    if (!env)
        return 0;
    if (kiln_transport_check(env) == 0) {
        /* A message that passes the check must re-encode within bounds. */
        size_t len = kiln__envelope__get_packed_size(env);
        if (len > KILN_MSG_MAX)
            __builtin_trap();
    }
    kiln__envelope__free_unpacked(env, NULL);
    return 0;
}
