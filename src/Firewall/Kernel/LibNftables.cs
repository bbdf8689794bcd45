using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using WhaleWall.Firewall.Nft;

namespace WhaleWall.Firewall.Kernel;

/// <summary>
/// <see cref="INftables"/> over libnftables (P/Invoke, JSON in and out). One libnftables
/// context, owned by one dedicated worker thread: the context is created, used and freed on
/// that thread only, so calls from any number of threads are serialised through a queue.
/// When <c>netnsPath</c> is given (e.g. <c>/run/netns/foo</c> or <c>/proc/PID/ns/net</c>) the
/// worker thread setns(CLONE_NEWNET)s into that namespace before creating the context, so the
/// netlink socket — and thus every command — lives in that namespace.
/// <para>The netlink socket is opened by the constructor and kept for the context's life.
/// libnftables 1.0.x waits on it with select(2): if its file-descriptor number is 1024 or more,
/// glibc aborts the whole process ("bit out of range 0 - FD_SETSIZE on fd_set"). Create the
/// context early (while the process has few open files) and keep it; do not let fds leak.</para>
/// <para>Never put an unvalidated string where libnftables expects an address: a string that is
/// not a literal address (e.g. "198.18.2.0/24" instead of {"prefix":...}) is resolved as a host
/// name through the system resolver.</para>
/// </summary>
public sealed class LibNftables : INftables, IDisposable
{
    private sealed record WorkItem(byte[] Command, bool DryRun, TaskCompletionSource<NftResult> Done);

    private readonly BlockingCollection<WorkItem> _queue = new();
    private readonly Thread _worker;
    private readonly object _gate = new();
    private bool _disposed;

    public string? NetnsPath { get; }

    public LibNftables(string? netnsPath = null)
    {
        NetnsPath = netnsPath;
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _worker = new Thread(() => WorkerLoop(ready))
        {
            IsBackground = true,
            Name = netnsPath is null ? "libnftables" : "libnftables " + netnsPath,
        };
        _worker.Start();
        try { ready.Task.GetAwaiter().GetResult(); }
        catch
        {
            _queue.CompleteAdding();
            throw;
        }
    }

    /// <inheritdoc />
    public NftResult Run(string json) => Submit(json, dryRun: false);

    /// <inheritdoc />
    public NftResult Check(string json) => Submit(json, dryRun: true);

    private NftResult Submit(string json, bool dryRun)
    {
        ArgumentNullException.ThrowIfNull(json);
        var item = new WorkItem(ToCString(json), dryRun, new TaskCompletionSource<NftResult>(TaskCreationOptions.RunContinuationsAsynchronously));
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _queue.Add(item);
        }
        return item.Done.Task.GetAwaiter().GetResult();
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _queue.CompleteAdding();
        }
        if (Thread.CurrentThread != _worker) _worker.Join();
        _queue.Dispose();
    }

    private void WorkerLoop(TaskCompletionSource ready)
    {
        IntPtr ctx;
        try
        {
            if (NetnsPath is not null) EnterNetns(NetnsPath);
            ctx = NativeMethods.nft_ctx_new(NativeMethods.NFT_CTX_DEFAULT);
            if (ctx == IntPtr.Zero) throw new InvalidOperationException("nft_ctx_new failed");
            NativeMethods.nft_ctx_output_set_flags(ctx,
                NativeMethods.nft_ctx_output_get_flags(ctx) | NativeMethods.NFT_CTX_OUTPUT_JSON);
            if (NativeMethods.nft_ctx_buffer_output(ctx) != 0 || NativeMethods.nft_ctx_buffer_error(ctx) != 0)
            {
                NativeMethods.nft_ctx_free(ctx);
                throw new InvalidOperationException("nft_ctx_buffer_output/error failed");
            }
        }
        catch (Exception e)
        {
            ready.SetException(e);
            return;
        }
        ready.SetResult();

        try
        {
            foreach (var item in _queue.GetConsumingEnumerable())
            {
                try { item.Done.SetResult(Execute(ctx, item.Command, item.DryRun)); }
                catch (Exception e) { item.Done.SetException(e); }
            }
        }
        finally
        {
            NativeMethods.nft_ctx_free(ctx);
        }
    }

    private static NftResult Execute(IntPtr ctx, byte[] command, bool dryRun)
    {
        if (dryRun) NativeMethods.nft_ctx_set_dry_run(ctx, true);
        int rc;
        try { rc = NativeMethods.nft_run_cmd_from_buffer(ctx, command); }
        finally { if (dryRun) NativeMethods.nft_ctx_set_dry_run(ctx, false); }
        // Reading a buffer also rewinds it, so read both every time: nothing leaks into the
        // next command's result.
        var output = Marshal.PtrToStringUTF8(NativeMethods.nft_ctx_get_output_buffer(ctx)) ?? "";
        var error = Marshal.PtrToStringUTF8(NativeMethods.nft_ctx_get_error_buffer(ctx)) ?? "";
        if (rc == 0) return NftResult.Success(output);
        return NftResult.Failure(error.Length > 0 ? error.TrimEnd() : $"libnftables failed (rc={rc})");
    }

    private static void EnterNetns(string path)
    {
        var fd = NativeMethods.open(path, NativeMethods.O_RDONLY | NativeMethods.O_CLOEXEC);
        if (fd < 0) throw new IOException($"open {path}: errno {Marshal.GetLastPInvokeError()}");
        try
        {
            if (NativeMethods.setns(fd, NativeMethods.CLONE_NEWNET) != 0)
                throw new IOException($"setns {path}: errno {Marshal.GetLastPInvokeError()}");
        }
        finally { NativeMethods.close(fd); }
    }

    private static byte[] ToCString(string s)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(s) + 1];
        Encoding.UTF8.GetBytes(s, 0, s.Length, bytes, 0);
        return bytes;
    }
}
