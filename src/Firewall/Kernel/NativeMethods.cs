using System.Runtime.InteropServices;

namespace WhaleWall.Firewall.Kernel;

/// <summary>Raw bindings to libnftables.so.1 (Debian <c>libnftables1</c>, 1.0.x) and the few
/// libc calls needed to enter a network namespace.</summary>
internal static class NativeMethods
{
    private const string Lib = "libnftables.so.1";

    // include/nftables/libnftables.h (1.0.6)
    public const uint NFT_CTX_DEFAULT = 0;
    public const uint NFT_CTX_OUTPUT_REVERSEDNS = 1u << 0;
    public const uint NFT_CTX_OUTPUT_SERVICE = 1u << 1;
    public const uint NFT_CTX_OUTPUT_STATELESS = 1u << 2;
    public const uint NFT_CTX_OUTPUT_HANDLE = 1u << 3;
    /// <summary>On 1.0.x this flag also makes nft_run_cmd_from_buffer parse its input as JSON
    /// (falling back to the classic syntax when the buffer is not JSON).</summary>
    public const uint NFT_CTX_OUTPUT_JSON = 1u << 4;
    public const uint NFT_CTX_OUTPUT_ECHO = 1u << 5;

    [DllImport(Lib)] public static extern IntPtr nft_ctx_new(uint flags);
    [DllImport(Lib)] public static extern void nft_ctx_free(IntPtr ctx);
    [DllImport(Lib)] public static extern uint nft_ctx_output_get_flags(IntPtr ctx);
    [DllImport(Lib)] public static extern void nft_ctx_output_set_flags(IntPtr ctx, uint flags);
    [DllImport(Lib)] public static extern int nft_ctx_buffer_output(IntPtr ctx);
    [DllImport(Lib)] public static extern int nft_ctx_buffer_error(IntPtr ctx);
    [DllImport(Lib)] public static extern IntPtr nft_ctx_get_output_buffer(IntPtr ctx);
    [DllImport(Lib)] public static extern IntPtr nft_ctx_get_error_buffer(IntPtr ctx);
    [DllImport(Lib)] public static extern int nft_run_cmd_from_buffer(IntPtr ctx, byte[] buf);
    [DllImport(Lib)] public static extern void nft_ctx_set_dry_run(IntPtr ctx, [MarshalAs(UnmanagedType.I1)] bool dry);

    public const int CLONE_NEWNET = 0x40000000;
    public const int O_RDONLY = 0;
    public const int O_CLOEXEC = 0x80000;

    [DllImport("libc", SetLastError = true)] public static extern int setns(int fd, int nstype);
    [DllImport("libc", SetLastError = true, CharSet = CharSet.Ansi)] public static extern int open(string path, int flags);
    [DllImport("libc", SetLastError = true)] public static extern int close(int fd);
}
