using System.Buffers.Binary;
using System.Runtime.InteropServices;
using static WhaleWall.Firewall.Kernel.Netlink.NetlinkNative;

namespace WhaleWall.Firewall.Kernel.Netlink;

/// <summary>
/// One AF_NETLINK socket (raw libc calls, no shelling out), used for one request at a time:
/// <see cref="Exchange"/> sends a request and collects its answer (a dump until NLMSG_DONE, or a
/// reply and/or the ACK). A socket belongs for its whole life to the network namespace it was
/// created in: with <c>netnsPath</c> it is created on a short-lived thread that entered that
/// namespace (setns needs CAP_SYS_ADMIN: tests only; the daemon uses its own namespace).
/// Every receive is bounded by a timeout, so a silent kernel never hangs the caller.
/// </summary>
internal sealed unsafe class NetlinkSocket : IDisposable
{
    private const int BufferSize = 1 << 18;

    private readonly object _gate = new();
    private readonly byte[] _buffer = new byte[BufferSize];
    private int _fd;
    private uint _seq;

    /// <param name="groups">multicast groups to join (a bit mask, e.g. RTMGRP_LINK = 1): the
    /// socket then also receives the kernel's notifications (see <see cref="WaitForNotification"/>).</param>
    public NetlinkSocket(int protocol, string? netnsPath = null, TimeSpan? timeout = null, uint groups = 0)
    {
        _fd = netnsPath is null ? Open(protocol) : OpenIn(netnsPath, protocol);
        try
        {
            var tv = new Timeval { Seconds = (long)(timeout ?? TimeSpan.FromSeconds(5)).TotalSeconds, Microseconds = 0 };
            if (tv.Seconds == 0) tv.Microseconds = 200_000;
            Check(setsockopt(_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(Timeval)), "setsockopt SO_RCVTIMEO");
            var one = 1;
            setsockopt(_fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(int)); // best effort (error text)
            var address = new SockaddrNl { Family = AF_NETLINK, Groups = groups };
            Check(bind(_fd, ref address, sizeof(SockaddrNl)), "bind AF_NETLINK");
            _seq = (uint)Environment.TickCount;
        }
        catch
        {
            close(_fd);
            throw;
        }
    }

    /// <summary>Asks the kernel to check dump requests strictly (unknown header fields are
    /// errors, attributes are filters). Returns false on kernels older than 4.20.</summary>
    public bool EnableStrictChecks()
    {
        var one = 1;
        return setsockopt(_fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof(int)) == 0;
    }

    /// <summary>Sends <paramref name="request"/> and returns the messages answering it (without
    /// the final NLMSG_DONE / ACK). Throws <see cref="NetlinkException"/> on an error answer,
    /// <see cref="TimeoutException"/> when the kernel stays silent.</summary>
    public List<NetlinkMessage> Exchange(NetlinkRequest request)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_fd < 0, this);
            for (var attempt = 0; ; attempt++)
            {
                var seq = ++_seq;
                Send(request.Finish(seq));
                var (messages, interrupted) = Receive(seq, request.IsDump, (request.Flags & NLM_F_ACK) != 0);
                // a dump that raced with changes is flagged NLM_F_DUMP_INTR: ask again (bounded)
                if (!interrupted || attempt >= 3) return messages;
            }
        }
    }

    /// <summary>Waits up to <paramref name="timeout"/> for notifications and discards them
    /// (the caller looks again at what it cares about). True if any arrived; an overrun
    /// (ENOBUFS: notifications were lost) counts as "something changed".</summary>
    public bool WaitForNotification(TimeSpan timeout)
    {
        var pfd = new PollFd { Fd = _fd, Events = POLLIN };
        var ready = poll(ref pfd, 1, (int)Math.Clamp(timeout.TotalMilliseconds, 0, int.MaxValue));
        if (ready <= 0) return false;
        lock (_gate)
        {
            while (true)
            {
                nint n;
                fixed (byte* p = _buffer) n = recv(_fd, p, _buffer.Length, MSG_DONTWAIT);
                if (n > 0) continue;
                var errno = Marshal.GetLastPInvokeError();
                return n == 0 || errno is 11 or 105 /* ENOBUFS */ or 4;
            }
        }
    }

    /// <summary>Waits up to <paramref name="timeout"/> for notifications of the joined groups and
    /// adds every message that arrived to <paramref name="into"/>. Returns false when the kernel
    /// overran the socket's buffer (ENOBUFS: notifications were lost).</summary>
    public bool ReadNotifications(TimeSpan timeout, List<NetlinkMessage> into)
    {
        var pfd = new PollFd { Fd = _fd, Events = POLLIN };
        var ready = poll(ref pfd, 1, (int)Math.Clamp(timeout.TotalMilliseconds, 0, int.MaxValue));
        if (ready <= 0) return true;
        lock (_gate)
        {
            while (true)
            {
                nint n;
                fixed (byte* p = _buffer) n = recv(_fd, p, _buffer.Length, MSG_DONTWAIT);
                if (n < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == 4) continue;     // EINTR
                    return errno != 105;          // EAGAIN: all read; ENOBUFS: lost some
                }
                if (n == 0) return true;
                var offset = 0;
                while (offset + 16 <= n)
                {
                    var span = _buffer.AsSpan(offset, (int)n - offset);
                    var len = (int)BinaryPrimitives.ReadUInt32LittleEndian(span);
                    if (len < 16 || len > span.Length) break;
                    into.Add(new NetlinkMessage(BinaryPrimitives.ReadUInt16LittleEndian(span[4..]),
                        BinaryPrimitives.ReadUInt16LittleEndian(span[6..]), BinaryPrimitives.ReadUInt32LittleEndian(span[8..]),
                        span.Slice(16, len - 16).ToArray()));
                    offset += NetlinkMessage.Align(len);
                }
            }
        }
    }

    /// <summary>Asks for a receive buffer of <paramref name="bytes"/> (the kernel caps it at
    /// net.core.rmem_max): notifications that arrive faster than they are read wait there.</summary>
    public void SetReceiveBuffer(int bytes) => setsockopt(_fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(int));

    private void Send(byte[] message)
    {
        var kernel = new SockaddrNl { Family = AF_NETLINK };
        fixed (byte* p = message)
        {
            var sent = sendto(_fd, p, message.Length, 0, ref kernel, sizeof(SockaddrNl));
            if (sent < 0) throw new NetlinkException(Marshal.GetLastPInvokeError(), "netlink sendto");
        }
    }

    private (List<NetlinkMessage>, bool Interrupted) Receive(uint seq, bool dump, bool ack)
    {
        var messages = new List<NetlinkMessage>();
        var interrupted = false;
        while (true)
        {
            nint n;
            fixed (byte* p = _buffer) n = recv(_fd, p, _buffer.Length, MSG_TRUNC);
            if (n < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == 4) continue; // EINTR
                if (errno == 11) throw new TimeoutException("netlink: no answer from the kernel");
                throw new NetlinkException(errno, "netlink recv");
            }
            if (n > _buffer.Length) throw new NetlinkException(90 /* EMSGSIZE */, "netlink answer larger than the buffer");

            var offset = 0;
            while (offset + 16 <= n)
            {
                var span = _buffer.AsSpan(offset, (int)n - offset);
                var len = (int)BinaryPrimitives.ReadUInt32LittleEndian(span);
                var type = BinaryPrimitives.ReadUInt16LittleEndian(span[4..]);
                var flags = BinaryPrimitives.ReadUInt16LittleEndian(span[6..]);
                var mseq = BinaryPrimitives.ReadUInt32LittleEndian(span[8..]);
                if (len < 16 || len > span.Length) throw new NetlinkException(EBADMSG, "netlink: malformed message");
                offset += NetlinkMessage.Align(len);
                if (mseq != seq) continue; // a late answer to an earlier request
                if ((flags & NLM_F_DUMP_INTR) != 0) interrupted = true;
                var payload = span.Slice(16, len - 16).ToArray();

                if (type == NLMSG_ERROR)
                {
                    var error = payload.Length >= 4 ? BinaryPrimitives.ReadInt32LittleEndian(payload) : -EBADMSG;
                    if (error != 0) throw new NetlinkException(-error, "netlink request refused");
                    return (messages, interrupted); // the ACK
                }
                if (type == NLMSG_DONE)
                {
                    var error = payload.Length >= 4 ? BinaryPrimitives.ReadInt32LittleEndian(payload) : 0;
                    if (error < 0) throw new NetlinkException(-error, "netlink dump failed");
                    return (messages, interrupted);
                }
                messages.Add(new NetlinkMessage(type, flags, mseq, payload));
                // a plain (non-dump) request without ACK ends with its single reply
                if (!dump && !ack && (flags & NLM_F_MULTI) == 0) return (messages, interrupted);
            }
        }
    }

    private const int EBADMSG = 74;

    private static int Open(int protocol)
    {
        var fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
        if (fd < 0) throw new NetlinkException(Marshal.GetLastPInvokeError(), "socket AF_NETLINK");
        return fd;
    }

    private static int OpenIn(string netnsPath, int protocol)
    {
        var fd = -1;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                var ns = open(netnsPath, O_RDONLY | O_CLOEXEC);
                if (ns < 0) throw new IOException($"open {netnsPath}: errno {Marshal.GetLastPInvokeError()}");
                try
                {
                    if (setns(ns, CLONE_NEWNET) != 0)
                        throw new IOException($"setns {netnsPath}: errno {Marshal.GetLastPInvokeError()}");
                }
                finally { close(ns); }
                fd = Open(protocol);
            }
            catch (Exception e) { failure = e; }
        }) { IsBackground = true, Name = "netlink socket in " + netnsPath };
        thread.Start();
        thread.Join();
        if (failure is not null) throw failure;
        return fd;
    }

    private static void Check(int rc, string what)
    {
        if (rc != 0) throw new NetlinkException(Marshal.GetLastPInvokeError(), what);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_fd < 0) return;
            close(_fd);
            _fd = -1;
        }
    }
}
