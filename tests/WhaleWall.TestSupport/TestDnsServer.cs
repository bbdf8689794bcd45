using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace WhaleWall.TestSupport;

/// <summary>A small authoritative DNS server over UDP, inside a test network namespace:
/// A/AAAA answers the test sets and changes at will, SERVFAIL on demand, NXDOMAIN for
/// unknown names; counts the questions per name. Answers only test addresses.</summary>
public sealed class TestDnsServer : IDisposable
{
    private readonly Socket socket;
    private readonly CancellationTokenSource stop = new();
    private readonly ConcurrentDictionary<string, (int Ttl, IPAddress[] Addresses)> records = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, bool> failing = new(StringComparer.OrdinalIgnoreCase);
    public ConcurrentDictionary<string, int> Queries { get; } = new(StringComparer.OrdinalIgnoreCase);

    private TestDnsServer(Socket socket)
    {
        this.socket = socket;
        _ = Task.Run(Serve);
    }

    public static TestDnsServer Start(string nsPath, string ip, int port = 53)
    {
        TestNet.Guard(ip);
        var socket = Netns.Run(nsPath, () =>
        {
            var s = new Socket(IPAddress.Parse(ip).AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            s.Bind(new IPEndPoint(IPAddress.Parse(ip), port));
            return s;
        });
        return new TestDnsServer(socket);
    }

    /// <summary>Answers <paramref name="name"/> with these addresses (A and AAAA by family).</summary>
    public void Set(string name, int ttl, params string[] addresses)
    {
        records[name.TrimEnd('.')] = (ttl, addresses.Select(a => IPAddress.Parse(TestNet.Guard(a))).ToArray());
        failing.TryRemove(name.TrimEnd('.'), out _);
    }

    /// <summary>SERVFAIL for this name until <see cref="Set"/> is called again.</summary>
    public void Fail(string name) => failing[name.TrimEnd('.')] = true;

    public int QueriesFor(string name) => Queries.TryGetValue(name.TrimEnd('.'), out var n) ? n : 0;

    private async Task Serve()
    {
        var buffer = new byte[1500];
        while (!stop.IsCancellationRequested)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await socket.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), stop.Token);
            }
            catch (Exception) when (stop.IsCancellationRequested) { return; }
            catch (SocketException) { continue; }
            try
            {
                var reply = Answer(buffer.AsSpan(0, received.ReceivedBytes).ToArray());
                if (reply is not null) await socket.SendToAsync(reply, SocketFlags.None, received.RemoteEndPoint);
            }
            catch (Exception) { /* a malformed query gets no answer */ }
        }
    }

    private byte[]? Answer(byte[] query)
    {
        if (query.Length < 12) return null;
        var (name, end) = ReadName(query, 12);
        var type = (query[end] << 8) | query[end + 1];
        var questionEnd = end + 4;
        Queries.AddOrUpdate(name, 1, (_, n) => n + 1);

        var rcode = 0;
        var answers = new List<IPAddress>();
        var ttl = 0;
        if (failing.ContainsKey(name)) rcode = 2;
        else if (records.TryGetValue(name, out var record))
        {
            ttl = record.Ttl;
            var family = type == 28 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork;
            answers.AddRange(record.Addresses.Where(a => a.AddressFamily == family && (type is 1 or 28)));
        }
        else rcode = 3;

        using var reply = new MemoryStream();
        reply.Write(query, 0, 2); // id
        reply.WriteByte((byte)(0x84 | (query[2] & 0x01))); // QR, AA, RD copied
        reply.WriteByte((byte)(0x80 | rcode)); // RA, rcode
        reply.Write([0, 1, (byte)(answers.Count >> 8), (byte)answers.Count, 0, 0, 0, 0]);
        reply.Write(query, 12, questionEnd - 12);
        foreach (var address in answers)
        {
            var data = address.GetAddressBytes();
            reply.Write([0xC0, 0x0C, 0, (byte)(data.Length == 4 ? 1 : 28), 0, 1]);
            reply.Write([(byte)(ttl >> 24), (byte)(ttl >> 16), (byte)(ttl >> 8), (byte)ttl, 0, (byte)data.Length]);
            reply.Write(data);
        }
        return reply.ToArray();
    }

    private static (string Name, int End) ReadName(byte[] message, int offset)
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
    }
}
