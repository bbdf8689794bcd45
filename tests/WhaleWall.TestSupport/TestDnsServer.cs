using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace WhaleWall.TestSupport;

/// <summary>A small authoritative DNS server over UDP and TCP, inside a test network
/// namespace: A/AAAA answers the test sets and changes at will, CNAMEs (followed inside the
/// answer, like a recursive resolver does), SERVFAIL on demand, NXDOMAIN for unknown names;
/// counts the questions per name and logs every query (name, type, transport, sender).
/// Answers only test addresses. <see cref="BeforeAnswer"/> lets a test act (e.g. send a
/// spoofed answer) before the real one goes out.</summary>
public sealed class TestDnsServer : IDisposable
{
    public sealed record LoggedQuery(string Name, int Type, string Transport, EndPoint From);

    private readonly Socket socket;
    private readonly Socket? tcp;
    private readonly CancellationTokenSource stop = new();
    private readonly ConcurrentDictionary<string, (int Ttl, IPAddress[] Addresses)> records = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, (int Ttl, string Target)> cnames = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, int> failing = new(StringComparer.OrdinalIgnoreCase);
    public ConcurrentDictionary<string, int> Queries { get; } = new(StringComparer.OrdinalIgnoreCase);
    public ConcurrentQueue<LoggedQuery> Log { get; } = new();

    /// <summary>Runs before each UDP answer is sent, with the query, its sender and the
    /// server's own socket (to forge datagrams from the server's real address).</summary>
    public Func<byte[], EndPoint, Socket, Task>? BeforeAnswer { get; set; }

    /// <summary>Answers UDP queries with TC set and no records (clients must retry over TCP).</summary>
    public bool TruncateUdp { get; set; }

    private TestDnsServer(Socket socket, Socket? tcp)
    {
        this.socket = socket;
        this.tcp = tcp;
        // UDP is served by a thread of its own, not the thread pool: on 2 cores a test process
        // whose pool threads are blocked (probes wait synchronously) delayed answers by seconds,
        // which the daemon saw as DNS failures, and a name's address lapsed
        new Thread(Serve) { IsBackground = true, Name = $"TestDnsServer {socket.LocalEndPoint}" }.Start();
        if (tcp is not null) _ = Task.Run(ServeTcp);
    }

    public IPEndPoint Endpoint => (IPEndPoint)socket.LocalEndPoint!;

    public static TestDnsServer Start(string nsPath, string ip, int port = 53, bool withTcp = true)
    {
        TestNet.Guard(ip);
        var (udp, tcp) = Netns.Run(nsPath, () =>
        {
            var address = IPAddress.Parse(ip);
            var s = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            s.Bind(new IPEndPoint(address, port));
            Socket? t = null;
            if (withTcp)
            {
                t = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                t.Bind(new IPEndPoint(address, port));
                t.Listen(64);
            }
            return (s, t);
        });
        return new TestDnsServer(udp, tcp);
    }

    /// <summary>Answers <paramref name="name"/> with these addresses (A and AAAA by family).</summary>
    public void Set(string name, int ttl, params string[] addresses)
    {
        records[name.TrimEnd('.')] = (ttl, addresses.Select(a => IPAddress.Parse(TestNet.Guard(a))).ToArray());
        cnames.TryRemove(name.TrimEnd('.'), out _);
        failing.TryRemove(name.TrimEnd('.'), out _);
    }

    /// <summary><paramref name="name"/> is an alias of <paramref name="target"/>.</summary>
    public void SetCname(string name, string target, int ttl = 60)
    {
        cnames[name.TrimEnd('.')] = (ttl, target.TrimEnd('.'));
        records.TryRemove(name.TrimEnd('.'), out _);
    }

    /// <summary>SERVFAIL (or <paramref name="rcode"/>, e.g. 5 REFUSED) for this name until
    /// <see cref="Set"/> is called again.</summary>
    public void Fail(string name, int rcode = 2) => failing[name.TrimEnd('.')] = rcode;

    public int QueriesFor(string name) => Queries.TryGetValue(name.TrimEnd('.'), out var n) ? n : 0;

    private void Serve()
    {
        var buffer = new byte[1500];
        while (!stop.IsCancellationRequested)
        {
            EndPoint from = new IPEndPoint(socket.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0);
            byte[] query;
            try
            {
                if (!socket.Poll(200_000, SelectMode.SelectRead)) continue; // notices Dispose
                query = buffer.AsSpan(0, socket.ReceiveFrom(buffer, ref from)).ToArray();
            }
            catch (SocketException) { continue; }
            catch (ObjectDisposedException) { return; }
            byte[]? reply;
            try { reply = Answer(query, "udp", from, TruncateUdp); }
            catch (Exception) { continue; } // a malformed query gets no answer
            if (reply is null) continue;
            if (BeforeAnswer is { } hook)
            {
                // the hook may wait (a slow or forging upstream): off this thread, so that other
                // queries are answered meanwhile
                _ = Task.Run(async () =>
                {
                    try
                    {
                        await hook(query, from, socket);
                        await socket.SendToAsync(reply, SocketFlags.None, from);
                    }
                    catch (Exception) { /* the answer is lost, as a test's hook may want */ }
                });
                continue;
            }
            try { socket.SendTo(reply, from); }
            catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        }
    }

    private async Task ServeTcp()
    {
        while (!stop.IsCancellationRequested)
        {
            Socket connection;
            try { connection = await tcp!.AcceptAsync(stop.Token); }
            catch (Exception) when (stop.IsCancellationRequested) { return; }
            catch (SocketException) { continue; }
            _ = Task.Run(async () =>
            {
                using var c = connection;
                try
                {
                    var header = new byte[2];
                    while (await ReadExactly(c, header))
                    {
                        var query = new byte[BinaryPrimitives.ReadUInt16BigEndian(header)];
                        if (!await ReadExactly(c, query)) return;
                        var reply = Answer(query, "tcp", c.RemoteEndPoint!, false);
                        if (reply is null) return;
                        var framed = new byte[reply.Length + 2];
                        BinaryPrimitives.WriteUInt16BigEndian(framed, (ushort)reply.Length);
                        reply.CopyTo(framed, 2);
                        await c.SendAsync(framed, SocketFlags.None);
                    }
                }
                catch (Exception) { /* the connection ends */ }
            });
        }
    }

    private async Task<bool> ReadExactly(Socket s, byte[] buffer)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await s.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, stop.Token);
            if (n == 0) return false;
            read += n;
        }
        return true;
    }

    private byte[]? Answer(byte[] query, string transport, EndPoint from, bool truncate)
    {
        if (query.Length < 12) return null;
        var (name, end) = ReadName(query, 12);
        var type = (query[end] << 8) | query[end + 1];
        var questionEnd = end + 4;
        Queries.AddOrUpdate(name, 1, (_, n) => n + 1);
        Log.Enqueue(new LoggedQuery(name, type, transport, from));

        var rcode = 0;
        var answers = new List<(string Owner, int Ttl, int Type, byte[] Data)>();
        var current = name;
        for (var step = 0; step < 8 && cnames.TryGetValue(current, out var alias); step++)
        {
            answers.Add((current, alias.Ttl, 5, EncodeName(alias.Target)));
            current = alias.Target;
        }
        if (failing.TryGetValue(current, out var failure)) rcode = failure;
        else if (records.TryGetValue(current, out var record))
        {
            var family = type == 28 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork;
            foreach (var a in record.Addresses.Where(a => a.AddressFamily == family && (type is 1 or 28)))
                answers.Add((current, record.Ttl, type, a.GetAddressBytes()));
        }
        else if (answers.Count == 0) rcode = 3;
        if (truncate) answers.Clear();

        using var reply = new MemoryStream();
        reply.Write(query, 0, 2); // id
        reply.WriteByte((byte)(0x84 | (truncate ? 0x02 : 0) | (query[2] & 0x01))); // QR, AA, TC, RD copied
        reply.WriteByte((byte)(0x80 | rcode)); // RA, rcode
        reply.Write([0, 1, (byte)(answers.Count >> 8), (byte)answers.Count, 0, 0, 0, 0]);
        reply.Write(query, 12, questionEnd - 12);
        foreach (var (owner, ttl, rtype, data) in answers)
        {
            if (owner.Equals(name, StringComparison.OrdinalIgnoreCase)) reply.Write([0xC0, 0x0C]);
            else reply.Write(EncodeName(owner));
            reply.Write([(byte)(rtype >> 8), (byte)rtype, 0, 1]);
            reply.Write([(byte)(ttl >> 24), (byte)(ttl >> 16), (byte)(ttl >> 8), (byte)ttl, (byte)(data.Length >> 8), (byte)data.Length]);
            reply.Write(data);
        }
        return reply.ToArray();
    }

    public static byte[] EncodeName(string name)
    {
        using var s = new MemoryStream();
        foreach (var label in name.TrimEnd('.').Split('.'))
        {
            s.WriteByte((byte)label.Length);
            s.Write(Encoding.ASCII.GetBytes(label));
        }
        s.WriteByte(0);
        return s.ToArray();
    }

    public static (string Name, int End) ReadName(byte[] message, int offset)
    {
        var labels = new List<string>();
        while (message[offset] != 0)
        {
            var length = message[offset];
            labels.Add(Encoding.ASCII.GetString(message, offset + 1, length));
            offset += length + 1;
        }
        return (string.Join('.', labels), offset + 1);
    }

    public void Dispose()
    {
        stop.Cancel();
        socket.Dispose();
        tcp?.Dispose();
    }
}
