using System.Net;
using System.Net.Sockets;
using System.Text;

namespace WhaleWall.TestSupport;

public enum ProbeOutcome { Connected, Refused, TimedOut }

/// <summary>Client-side probes that run inside a network namespace (the socket is created on a
/// thread that entered the namespace, then used from the calling thread).</summary>
public static class Probe
{
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(1.5);

    /// <summary>The socket error behind the calling thread's last <see cref="ProbeOutcome.Refused"/>
    /// (for assertion messages: a reset, an ICMP error and a local neighbour failure all read Refused).</summary>
    [ThreadStatic] public static SocketError? LastError;

    /// <summary>TCP connect from inside <paramref name="nsPath"/>. Connected when the handshake
    /// completes, Refused on RST / ICMP unreachable, TimedOut otherwise.</summary>
    public static ProbeOutcome Tcp(string nsPath, string ip, int port, TimeSpan? timeout = null, string? sourceIp = null)
    {
        var target = new IPEndPoint(IPAddress.Parse(ip), port);
        var limit = timeout ?? DefaultTimeout;
        using var socket = Netns.Run(nsPath, () =>
        {
            var s = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                if (sourceIp is not null) s.Bind(new IPEndPoint(IPAddress.Parse(sourceIp), 0));
            }
            catch { s.Dispose(); throw; }
            return s;
        });
        using var cts = new CancellationTokenSource(limit);
        LastError = null;
        try
        {
            socket.ConnectAsync(target, cts.Token).AsTask().GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) { return ProbeOutcome.TimedOut; }
        catch (SocketException e) { LastError = e.SocketErrorCode; return Classify(e); }

        // The handshake completed. Read the server's greeting (best effort, not required).
        try
        {
            socket.ReceiveTimeout = (int)Math.Max(100, limit.TotalMilliseconds);
            var buf = new byte[16];
            socket.Receive(buf);
        }
        catch (SocketException) { }
        return ProbeOutcome.Connected;
    }

    /// <summary>Sends "ping" and waits for the same datagram to come back, retrying the send up
    /// to 3 times within the timeout.</summary>
    public static bool UdpEcho(string nsPath, string ip, int port, TimeSpan? timeout = null, string? sourceIp = null) =>
        UdpEcho(nsPath, ip, port, timeout, sourceIp, 0);

    /// <summary>As above, from a fixed source port (<paramref name="sourcePort"/> 0: any): the
    /// same 5-tuple as an earlier flow, to see whether its conntrack entry still lets it pass.</summary>
    public static bool UdpEcho(string nsPath, string ip, int port, TimeSpan? timeout, string? sourceIp, int sourcePort)
    {
        var target = new IPEndPoint(IPAddress.Parse(ip), port);
        var limit = timeout ?? DefaultTimeout;
        using var socket = Netns.Run(nsPath, () =>
        {
            var s = new Socket(target.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            try
            {
                if (sourceIp is not null || sourcePort != 0)
                    s.Bind(new IPEndPoint(sourceIp is null ? (target.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any) : IPAddress.Parse(sourceIp), sourcePort));
                s.Connect(target); // only datagrams from the target are delivered
            }
            catch { s.Dispose(); throw; }
            return s;
        });
        var payload = Encoding.ASCII.GetBytes("ping");
        var buf = new byte[64];
        var deadline = DateTime.UtcNow + limit;
        for (var attempt = 0; attempt < 3; attempt++)
        {
            var remaining = deadline - DateTime.UtcNow;
            if (remaining <= TimeSpan.Zero) break;
            var slice = attempt == 2 ? remaining : TimeSpan.FromTicks(Math.Min(remaining.Ticks, limit.Ticks / 3));
            try
            {
                socket.Send(payload);
                var sliceEnd = DateTime.UtcNow + slice;
                while (true)
                {
                    var left = sliceEnd - DateTime.UtcNow;
                    if (left <= TimeSpan.Zero || !socket.Poll((int)Math.Max(1, left.TotalMicroseconds), SelectMode.SelectRead))
                        break;
                    var n = socket.Receive(buf);
                    if (n == payload.Length && buf.AsSpan(0, n).SequenceEqual(payload)) return true;
                }
            }
            catch (SocketException)
            {
                // ICMP unreachable (ECONNREFUSED on a connected UDP socket): wait out the slice, retry.
                var left = deadline - DateTime.UtcNow;
                var wait = TimeSpan.FromTicks(Math.Min(left.Ticks, slice.Ticks));
                if (wait > TimeSpan.Zero) Thread.Sleep(wait);
            }
        }
        return false;
    }

    private static ProbeOutcome Classify(SocketException e) => e.SocketErrorCode switch
    {
        SocketError.ConnectionRefused or SocketError.ConnectionReset or SocketError.HostUnreachable
            or SocketError.NetworkUnreachable or SocketError.AccessDenied => ProbeOutcome.Refused,
        _ => ProbeOutcome.TimedOut,
    };
}
