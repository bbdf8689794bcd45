using System.Net;
using System.Net.Sockets;
using System.Text;

namespace WhaleWall.TestSupport;

/// <summary>What a TCP client saw when it also waited for the server's greeting.</summary>
public enum GreetingOutcome
{
    /// <summary>Connected and the server's "ok\n" arrived: the path to the real server is open.</summary>
    Greeted,
    /// <summary>The handshake completed (e.g. at docker-proxy) but no data came before the
    /// connection closed or the timeout: the real server was not reached.</summary>
    ConnectedNoData,
    Refused,
    TimedOut,
}

/// <summary>
/// A TCP probe that decides by the data, not the handshake. Needed for published ports reached
/// through Docker's userland proxy (e.g. 127.0.0.1:&lt;host port&gt;): docker-proxy accepts every
/// local connection itself and only then dials the container, so a completed handshake says
/// nothing about whether the container is reachable. <see cref="TcpServer"/> writes "ok\n".
/// </summary>
public static class E2eProbe
{
    public static GreetingOutcome TcpGreeting(string nsPath, string ip, int port, TimeSpan? timeout = null, string? sourceIp = null)
    {
        TestNet.Guard(ip);
        if (sourceIp is not null) TestNet.Guard(sourceIp);
        var limit = timeout ?? TimeSpan.FromSeconds(2);
        return Netns.Run(nsPath, () =>
        {
            var addr = IPAddress.Parse(ip);
            using var s = new Socket(addr.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            if (sourceIp is not null) s.Bind(new IPEndPoint(IPAddress.Parse(sourceIp), 0));
            var deadline = DateTime.UtcNow + limit;
            try
            {
                using var cts = new CancellationTokenSource(limit);
                s.ConnectAsync(new IPEndPoint(addr, port), cts.Token).AsTask().GetAwaiter().GetResult();
            }
            catch (OperationCanceledException) { return GreetingOutcome.TimedOut; }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused) { return GreetingOutcome.Refused; }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.HostUnreachable or SocketError.NetworkUnreachable)
            { return GreetingOutcome.TimedOut; }

            var buf = new byte[64];
            var got = new StringBuilder();
            try
            {
                while (DateTime.UtcNow < deadline)
                {
                    var left = deadline - DateTime.UtcNow;
                    using var cts = new CancellationTokenSource(left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(1));
                    var n = s.ReceiveAsync(buf, SocketFlags.None, cts.Token).AsTask().GetAwaiter().GetResult();
                    if (n == 0) break;
                    got.Append(Encoding.ASCII.GetString(buf, 0, n));
                    if (got.ToString().Contains("ok\n")) return GreetingOutcome.Greeted;
                }
            }
            catch (OperationCanceledException) { }
            catch (SocketException) { }
            return got.ToString().Contains("ok\n") ? GreetingOutcome.Greeted : GreetingOutcome.ConnectedNoData;
        });
    }
}
