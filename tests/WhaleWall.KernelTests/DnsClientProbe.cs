using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using ARSoft.Tools.Net.Dns;
using WhaleWall.TestSupport;

namespace WhaleWall.KernelTests;

/// <summary>A stub resolver inside a namespace: one query over UDP or TCP, the answer decoded
/// (null when none arrives in time).</summary>
internal static class DnsClientProbe
{
    public static byte[] Query(ushort id, string name, ushort type)
    {
        var encoded = TestDnsServer.EncodeName(name);
        var q = new byte[12 + encoded.Length + 4];
        BinaryPrimitives.WriteUInt16BigEndian(q, id);
        q[2] = 0x01;
        q[5] = 1;
        encoded.CopyTo(q, 12);
        BinaryPrimitives.WriteUInt16BigEndian(q.AsSpan(12 + encoded.Length), type);
        BinaryPrimitives.WriteUInt16BigEndian(q.AsSpan(14 + encoded.Length), 1);
        return q;
    }

    public static DnsMessage? Ask(string nsPath, IPEndPoint server, string name, ushort type = 1, bool tcp = false, TimeSpan? timeout = null)
    {
        TestNet.Guard(server.Address.ToString());
        var wait = timeout ?? TimeSpan.FromSeconds(3);
        var id = (ushort)Random.Shared.Next(1, 65535);
        using var socket = Netns.Run(nsPath, () => new Socket(server.AddressFamily, tcp ? SocketType.Stream : SocketType.Dgram, tcp ? ProtocolType.Tcp : ProtocolType.Udp));
        socket.ReceiveTimeout = (int)wait.TotalMilliseconds;
        socket.SendTimeout = (int)wait.TotalMilliseconds;
        try
        {
            var query = Query(id, name, type);
            if (!tcp)
            {
                socket.Connect(server);
                socket.Send(query);
                var buffer = new byte[65535];
                var n = socket.Receive(buffer);
                return DnsMessage.Parse(new ArraySegment<byte>(buffer, 0, n));
            }
            var connect = socket.BeginConnect(server, null, null);
            if (!connect.AsyncWaitHandle.WaitOne(wait)) return null;
            socket.EndConnect(connect);
            var framed = new byte[query.Length + 2];
            BinaryPrimitives.WriteUInt16BigEndian(framed, (ushort)query.Length);
            query.CopyTo(framed, 2);
            socket.Send(framed);
            var header = ReadExactly(socket, 2);
            return DnsMessage.Parse(new ArraySegment<byte>(ReadExactly(socket, BinaryPrimitives.ReadUInt16BigEndian(header))));
        }
        catch (SocketException) { return null; }
    }

    private static byte[] ReadExactly(Socket s, int length)
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
