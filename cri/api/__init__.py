"""The CRI wire format: stubs generated from api/runtime/{v1,v1alpha2}/api.proto."""

# kubelet's gRPC client accepts messages up to this size (CRI-NOTES §4); the server sends no
# larger, and what an answer carries (ExecSync's output) is sized to fit.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
