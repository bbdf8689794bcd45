using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace WhaleWall.TestSupport;

/// <summary>Did a TCP connection's FIRST SYN get through? A wall-clock deadline just under the
/// SYN retransmission time (1 s) answers that only approximately: on a loaded machine the probe's
/// own thread can miss it while the handshake completed at once. This connects with a generous
/// deadline and asks the kernel (TCP_INFO) how many segments the socket retransmitted: a SYN or
/// SYN-ACK that was lost shows as a retransmitted SYN, whenever the probe gets to look.</summary>
public static class FirstSyn
{
    private const int SolTcp = 6, TcpInfo = 11, TotalRetransOffset = 100; // struct tcp_info: tcpi_total_retrans

    public sealed record Outcome(ProbeOutcome Probe, int Retransmitted, TimeSpan Took)
    {
        /// <summary>Connected, and with the first SYN.</summary>
        public bool FirstTry => Probe == ProbeOutcome.Connected && Retransmitted == 0;

        public override string ToString() => $"{Probe}, {Retransmitted} retransmitted, after {Took.TotalMilliseconds:F0} ms";
    }

    public static Outcome Connect(string nsPath, string ip, int port, TimeSpan? timeout = null)
    {
        var target = new IPEndPoint(IPAddress.Parse(ip), port);
        using var socket = Netns.Run(nsPath, () => new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp));
        var started = DateTime.UtcNow;
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(3));
        try
        {
            socket.ConnectAsync(target, cts.Token).AsTask().GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) { return new(ProbeOutcome.TimedOut, Retransmits(socket), DateTime.UtcNow - started); }
        catch (SocketException e)
        {
            var refused = e.SocketErrorCode is SocketError.ConnectionRefused or SocketError.HostUnreachable or SocketError.NetworkUnreachable;
            return new(refused ? ProbeOutcome.Refused : ProbeOutcome.TimedOut, Retransmits(socket), DateTime.UtcNow - started);
        }
        return new(ProbeOutcome.Connected, Retransmits(socket), DateTime.UtcNow - started);
    }

    private static int Retransmits(Socket socket)
    {
        Span<byte> info = stackalloc byte[232];
        try
        {
            var n = socket.GetRawSocketOption(SolTcp, TcpInfo, info);
            return n >= TotalRetransOffset + 4 ? (int)BinaryPrimitives.ReadUInt32LittleEndian(info[TotalRetransOffset..]) : -1;
        }
        catch (SocketException) { return -1; }
        catch (ObjectDisposedException) { return -1; }
    }
}
