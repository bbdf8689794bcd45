using System.Net;
using System.Net.Sockets;

namespace WhaleWall.TestSupport;

/// <summary>A UDP echo server inside a network namespace: sends every datagram back to its
/// sender. Listening on "::" is dual-stack (IPv4 too).</summary>
public sealed class UdpEchoServer : IDisposable
{
    private readonly Socket _socket;
    private readonly Thread _loop;
    private int _received;
    private volatile bool _stopping;

    public int Received => Volatile.Read(ref _received);
    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    private UdpEchoServer(Socket socket)
    {
        _socket = socket;
        _loop = new Thread(EchoLoop) { IsBackground = true, Name = $"UdpEchoServer {socket.LocalEndPoint}" };
        _loop.Start();
    }

    public static UdpEchoServer Start(string nsPath, string ip, int port)
    {
        var address = IPAddress.Parse(ip);
        var socket = Netns.Run(nsPath, () =>
        {
            var s = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            try
            {
                s.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                if (address.Equals(IPAddress.IPv6Any)) s.DualMode = true;
                s.Bind(new IPEndPoint(address, port));
            }
            catch { s.Dispose(); throw; }
            return s;
        });
        return new UdpEchoServer(socket);
    }

    private void EchoLoop()
    {
        var buf = new byte[65536];
        while (!_stopping)
        {
            EndPoint from = new IPEndPoint(_socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
            int n;
            try
            {
                // Poll with a timeout so Dispose is noticed even if close does not wake recvfrom.
                if (!_socket.Poll(200_000, SelectMode.SelectRead)) continue;
                n = _socket.ReceiveFrom(buf, ref from);
            }
            catch (SocketException) { if (_stopping) return; continue; }
            catch (ObjectDisposedException) { return; }
            Interlocked.Increment(ref _received);
            try { _socket.SendTo(buf.AsSpan(0, n), SocketFlags.None, from); }
            catch (SocketException) { }
            catch (ObjectDisposedException) { return; }
        }
    }

    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        _loop.Join(TimeSpan.FromSeconds(2));
        _socket.Dispose();
    }
}
