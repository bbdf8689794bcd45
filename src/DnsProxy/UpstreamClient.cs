using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using ARSoft.Tools.Net.Dns;
using WhaleWall.Firewall.Dns;
using WhaleWall.Firewall.Names;

namespace WhaleWall.DnsProxy;

/// <summary>
/// Asks one upstream resolver one question. UDP from a fresh connected socket (the kernel
/// delivers only datagrams from the upstream's address and port; a random id and a random
/// source port on top), TCP when the answer is truncated. Every datagram is checked against
/// the query (<see cref="AnswerCheck.Mismatch"/>); one that does not match is ignored and the
/// wait goes on, so a spoofed answer can neither open anything nor cut the real one off.
/// </summary>
internal sealed class UpstreamClient(SocketFactory sockets)
{
    private const int MaxTcpMessage = 65535;

    public sealed record Result(SentQuery Sent, DnsMessage Message, UpstreamAnswer Answer, int Ignored);

    public async Task<Result?> AskAsync(IPEndPoint upstream, DnsName name, ushort type, TimeSpan timeout, CancellationToken cancellation)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        deadline.CancelAfter(timeout);
        try
        {
            var udp = await AskUdpAsync(upstream, name, type, deadline.Token);
            if (udp is null || !udp.Answer.Truncated) return udp;
            return await AskTcpAsync(upstream, name, type, deadline.Token) ?? udp;
        }
        catch (OperationCanceledException) when (!cancellation.IsCancellationRequested) { return null; }
        catch (SocketException) { return null; }
    }

    private static ushort NewId() => BinaryPrimitives.ReadUInt16BigEndian(RandomNumberGenerator.GetBytes(2));

    private async Task<Result?> AskUdpAsync(IPEndPoint upstream, DnsName name, ushort type, CancellationToken cancellation)
    {
        var sent = new SentQuery(NewId(), name, type, upstream);
        using var socket = sockets(upstream.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        await socket.ConnectAsync(upstream, cancellation);
        await socket.SendAsync(QueryWire.EncodeQuery(sent.Id, name, type), SocketFlags.None, cancellation);
        var buffer = new byte[QueryWire.EdnsPayload * 4];
        var ignored = 0;
        while (true)
        {
            var received = await socket.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(upstream.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0), cancellation);
            var from = (IPEndPoint)received.RemoteEndPoint;
            var decoded = QueryWire.Decode(new ArraySegment<byte>(buffer, 0, received.ReceivedBytes), from);
            if (decoded is { } d && AnswerCheck.Mismatch(sent, d.Answer) is null)
                return new Result(sent, d.Message, d.Answer, ignored);
            ignored++;
        }
    }

    private async Task<Result?> AskTcpAsync(IPEndPoint upstream, DnsName name, ushort type, CancellationToken cancellation)
    {
        var sent = new SentQuery(NewId(), name, type, upstream);
        using var socket = sockets(upstream.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(upstream, cancellation);
        var query = QueryWire.EncodeQuery(sent.Id, name, type);
        var framed = new byte[query.Length + 2];
        BinaryPrimitives.WriteUInt16BigEndian(framed, (ushort)query.Length);
        query.CopyTo(framed, 2);
        await socket.SendAsync(framed, SocketFlags.None, cancellation);
        var header = new byte[2];
        await ReadExactlyAsync(socket, header, cancellation);
        var length = BinaryPrimitives.ReadUInt16BigEndian(header);
        if (length is 0 or > MaxTcpMessage) return null;
        var body = new byte[length];
        await ReadExactlyAsync(socket, body, cancellation);
        var decoded = QueryWire.Decode(body, (IPEndPoint)socket.RemoteEndPoint!);
        if (decoded is not { } d || AnswerCheck.Mismatch(sent, d.Answer) is not null) return null;
        return new Result(sent, d.Message, d.Answer, 0);
    }

    private static async Task ReadExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken cancellation)
    {
        while (buffer.Length > 0)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellation);
            if (n == 0) throw new SocketException((int)SocketError.ConnectionReset);
            buffer = buffer[n..];
        }
    }
}
