using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using WhaleWall.TestSupport;

namespace WhaleWall.Bench;

/// <summary>When an address enters or leaves the kernel: a netlink socket in the daemon's
/// namespace joined to NFNLGRP_NFTABLES, where the kernel multicasts NEWSETELEM/DELSETELEM as a
/// transaction commits. The time a message arrives here is the commit (plus a socket hop),
/// whatever the layout calls its sets: an element of any set of the inet table
/// <paramref name="table"/> whose key is exactly one IPv4 address counts (managed4 today; an
/// address -> policy map tomorrow); with <c>fieldsOfConcatenations</c> also every 4-byte field of
/// a longer key (a DNS element: owner . resolved address . ...). `nft monitor` was the first try: nft 1.0.6 prints
/// concatenated interval elements from uninitialised memory and crashed (SIGSEGV) under churn.</summary>
public sealed class ElementMonitor : IDisposable
{
    public sealed record Seen(bool Added, long UnixNanos);

    private const int AF_NETLINK = 16, SOCK_RAW = 3, NETLINK_NETFILTER = 12, NFNLGRP_NFTABLES = 7;
    private const int SOL_SOCKET = 1, SO_RCVBUFFORCE = 33, SO_RCVTIMEO = 20;
    private const int NFT_MSG_NEWSETELEM = 12, NFT_MSG_DELSETELEM = 14, NFNL_SUBSYS_NFTABLES = 10, NFPROTO_INET = 1;
    private const int ENOBUFS = 105;

    private readonly ConcurrentDictionary<IPAddress, List<Seen>> byAddress = new();
    /// <summary>Per address, the waiters' wake-up for its next notification (waiters are woken,
    /// not polling: 20 waiters polling every 2 ms took CPU from the daemon they measure).</summary>
    private readonly ConcurrentDictionary<IPAddress, TaskCompletionSource> signals = new();
    private readonly string table;
    private readonly bool fieldsOfConcatenations;
    private readonly int fd;
    private readonly Thread reader;
    private volatile bool stopping;
    public int Messages { get; private set; }
    /// <summary>Times the socket's buffer overflowed (notifications lost).</summary>
    public int Overruns { get; private set; }

    public ElementMonitor(string nsPath, string table, bool fieldsOfConcatenations = false)
    {
        this.table = table;
        this.fieldsOfConcatenations = fieldsOfConcatenations;
        fd = Netns.Run(nsPath, () => socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER));
        if (fd < 0) throw new IOException($"netlink socket: errno {Marshal.GetLastPInvokeError()}");
        var size = 32 << 20;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, ref size, sizeof(int));
        var timeout = new long[] { 0, 200_000 }; // 200 ms: the reader notices Dispose
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, timeout, 16);
        var address = new byte[12];
        BinaryPrimitives.WriteUInt16LittleEndian(address, AF_NETLINK);
        BinaryPrimitives.WriteUInt32LittleEndian(address.AsSpan(8), 1u << (NFNLGRP_NFTABLES - 1));
        if (bind(fd, address, address.Length) != 0) throw new IOException($"netlink bind: errno {Marshal.GetLastPInvokeError()}");
        Cleanup.Register("netlink monitor", Dispose);
        reader = new Thread(Read) { IsBackground = true, Name = "nft-notifications" };
        reader.Start();
    }

    private void Read()
    {
        var buffer = new byte[1 << 20];
        while (!stopping)
        {
            var n = (int)recv(fd, buffer, buffer.Length, 0);
            var now = Clock.UnixNanos();
            if (n < 0)
            {
                if (Marshal.GetLastPInvokeError() == ENOBUFS) Overruns++;
                continue; // timeout (EAGAIN) or overrun
            }
            for (var off = 0; off + 16 <= n;)
            {
                var len = (int)BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(off));
                if (len < 16 || off + len > n) break;
                var type = BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(off + 4));
                if (type >> 8 == NFNL_SUBSYS_NFTABLES && (type & 0xff) is NFT_MSG_NEWSETELEM or NFT_MSG_DELSETELEM && buffer[off + 16] == NFPROTO_INET)
                    Message(buffer.AsSpan(off + 20, len - 20), (type & 0xff) == NFT_MSG_NEWSETELEM, now);
                off += Align(len);
            }
        }
    }

    private void Message(ReadOnlySpan<byte> attributes, bool added, long now)
    {
        string? tableName = null;
        var addresses = new List<IPAddress>();
        foreach (var (type, payload) in Attributes(attributes))
        {
            if (type == 1) tableName = Encoding.ASCII.GetString(payload).TrimEnd('\0'); // NFTA_SET_ELEM_LIST_TABLE
            else if (type == 3)                                                        // NFTA_SET_ELEM_LIST_ELEMENTS
                foreach (var (_, element) in Attributes(payload))                       // NFTA_LIST_ELEM
                    foreach (var (field, key) in Attributes(element))
                        if (field == 1)                                                 // NFTA_SET_ELEM_KEY
                            foreach (var (dataType, value) in Attributes(key))
                                if (dataType == 1 && value.Length == 4)                 // NFTA_DATA_VALUE: one IPv4 address
                                    addresses.Add(new IPAddress(value));
                                else if (dataType == 1 && fieldsOfConcatenations)       // each field of a concatenation starts 4-aligned
                                    for (var f = 0; f + 4 <= value.Length; f += 4) addresses.Add(new IPAddress(value.AsSpan(f, 4)));
        }
        if (tableName != table) return;
        Messages++;
        foreach (var a in addresses)
        {
            var list = byAddress.GetOrAdd(a, _ => new List<Seen>());
            lock (list) list.Add(new Seen(added, now));
            if (signals.TryRemove(a, out var waiting)) waiting.TrySetResult(); // after the add: a waiter that missed it is woken
        }
    }

    private static List<(int Type, byte[] Payload)> Attributes(ReadOnlySpan<byte> data)
    {
        var result = new List<(int, byte[])>();
        for (var off = 0; off + 4 <= data.Length;)
        {
            var len = BinaryPrimitives.ReadUInt16LittleEndian(data[off..]);
            if (len < 4 || off + len > data.Length) break;
            var type = BinaryPrimitives.ReadUInt16LittleEndian(data[(off + 2)..]) & 0x3fff; // without NLA_F_NESTED / byte order
            result.Add((type, data[(off + 4)..(off + len)].ToArray()));
            off += Align(len);
        }
        return result;
    }

    private static int Align(int n) => (n + 3) & ~3;

    /// <summary>The first add (or delete) of <paramref name="address"/> at or after
    /// <paramref name="sinceUnixNanos"/>, waiting up to <paramref name="timeout"/>; null if none.</summary>
    public async Task<long?> WaitAsync(IPAddress address, bool added, long sinceUnixNanos, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            // the signal is taken before the list is read: a notification after the read wakes it
            var signal = signals.GetOrAdd(address, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            if (byAddress.TryGetValue(address, out var list))
                lock (list)
                    foreach (var s in list)
                        if (s.Added == added && s.UnixNanos >= sinceUnixNanos) return s.UnixNanos;
            var left = timeout - deadline.Elapsed;
            if (left <= TimeSpan.Zero) return null;
            try { await signal.Task.WaitAsync(left); }
            catch (TimeoutException) { }
        }
    }

    public void Dispose()
    {
        if (stopping) return;
        stopping = true;
        reader.Join(TimeSpan.FromSeconds(2));
        close(fd);
    }

    [DllImport("libc", SetLastError = true)] private static extern int socket(int domain, int type, int protocol);
    [DllImport("libc", SetLastError = true)] private static extern int bind(int fd, byte[] address, int length);
    [DllImport("libc", SetLastError = true)] private static extern int setsockopt(int fd, int level, int name, ref int value, int length);
    [DllImport("libc", SetLastError = true)] private static extern int setsockopt(int fd, int level, int name, long[] value, int length);
    [DllImport("libc", SetLastError = true)] private static extern nint recv(int fd, byte[] buffer, nint length, int flags);
    [DllImport("libc")] private static extern int close(int fd);
}
