using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace WhaleWall.TestSupport;

/// <summary>A minimal stub resolver for tests: one A query over UDP or TCP from inside a
/// network namespace (a container's too), returning the rcode and the A addresses of the
/// answer (null when nothing arrives in time). Only test addresses and loopback.</summary>
public static class DnsStub
{
    public sealed record Reply(int Rcode, IReadOnlyList<string> Addresses);

    public static Reply? Ask(string nsPath, string server, int port, string name, bool tcp = false, TimeSpan? timeout = null)
    {
        TestNet.Guard(server);
        var address = IPAddress.Parse(server);
        var wait = (int)(timeout ?? TimeSpan.FromSeconds(3)).TotalMilliseconds;
        var id = (ushort)Random.Shared.Next(1, 65535);
        var query = Query(id, name);
        using var socket = Netns.Run(nsPath, () => new Socket(address.AddressFamily, tcp ? SocketType.Stream : SocketType.Dgram, tcp ? ProtocolType.Tcp : ProtocolType.Udp));
        socket.ReceiveTimeout = wait;
        socket.SendTimeout = wait;
        try
        {
            byte[] reply;
            if (tcp)
            {
                var connect = socket.BeginConnect(new IPEndPoint(address, port), null, null);
                if (!connect.AsyncWaitHandle.WaitOne(wait)) return null;
                socket.EndConnect(connect);
                var framed = new byte[query.Length + 2];
                BinaryPrimitives.WriteUInt16BigEndian(framed, (ushort)query.Length);
                query.CopyTo(framed, 2);
                socket.Send(framed);
                reply = Read(socket, BinaryPrimitives.ReadUInt16BigEndian(Read(socket, 2)));
            }
            else
            {
                socket.Connect(new IPEndPoint(address, port));
                socket.Send(query);
                var buffer = new byte[4096];
                reply = buffer[..socket.Receive(buffer)];
            }
            return Parse(reply, id);
        }
        catch (SocketException) { return null; }
    }

    /// <summary>An A query for <paramref name="name"/> (recursion desired) on the wire.</summary>
    public static byte[] Query(ushort id, string name)
    {
        var encoded = TestDnsServer.EncodeName(name);
        var query = new byte[12 + encoded.Length + 4];
        BinaryPrimitives.WriteUInt16BigEndian(query, id);
        query[2] = 0x01;
        query[5] = 1;
        encoded.CopyTo(query, 12);
        query[^3] = 1; // type A
        query[^1] = 1; // class IN
        return query;
    }

    private static Reply? Parse(byte[] m, ushort id)
    {
        if (m.Length < 12 || BinaryPrimitives.ReadUInt16BigEndian(m) != id) return null;
        var rcode = m[3] & 0x0f;
        var qd = BinaryPrimitives.ReadUInt16BigEndian(m.AsSpan(4));
        var an = BinaryPrimitives.ReadUInt16BigEndian(m.AsSpan(6));
        var at = 12;
        for (var i = 0; i < qd; i++) at = SkipName(m, at) + 4;
        var addresses = new List<string>();
        for (var i = 0; i < an; i++)
        {
            at = SkipName(m, at);
            var type = BinaryPrimitives.ReadUInt16BigEndian(m.AsSpan(at));
            var length = BinaryPrimitives.ReadUInt16BigEndian(m.AsSpan(at + 8));
            at += 10;
            if (type == 1 && length == 4) addresses.Add(new IPAddress(m.AsSpan(at, 4)).ToString());
            at += length;
        }
        return new Reply(rcode, addresses);
    }

    private static int SkipName(byte[] m, int at)
    {
        while (true)
        {
            var b = m[at];
            if (b == 0) return at + 1;
            if ((b & 0xC0) == 0xC0) return at + 2;
            at += b + 1;
        }
    }

    private static byte[] Read(Socket s, int length)
    {
        var buffer = new byte[length];
        var read = 0;
        while (read < length)
        {
            var n = s.Receive(buffer, read, length - read, SocketFlags.None);
            if (n == 0) throw new SocketException((int)SocketError.ConnectionReset);
            read += n;
        }
        return buffer;
    }
}
