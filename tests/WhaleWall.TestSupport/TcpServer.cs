using System.Net;
using System.Net.Sockets;
using System.Text;

namespace WhaleWall.TestSupport;

/// <summary>A TCP server inside a network namespace: accepts forever on a background thread,
/// writes "ok\n" to every client and closes. Listening on "::" is dual-stack (IPv4 too).</summary>
public sealed class TcpServer : IDisposable
{
    private static readonly byte[] Greeting = Encoding.ASCII.GetBytes("ok\n");
    private readonly Socket _listener;
    private readonly Thread _loop;
    private int _accepted;
    private volatile bool _stopping;

    public int Accepted => Volatile.Read(ref _accepted);
    public IPEndPoint LocalEndPoint => (IPEndPoint)_listener.LocalEndPoint!;

    private TcpServer(Socket listener)
    {
        _listener = listener;
        _loop = new Thread(AcceptLoop) { IsBackground = true, Name = $"TcpServer {listener.LocalEndPoint}" };
        _loop.Start();
    }

    public static TcpServer Start(string nsPath, string ip, int port)
    {
        var address = IPAddress.Parse(ip);
        var listener = Netns.Run(nsPath, () =>
        {
            var s = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                s.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                if (address.Equals(IPAddress.IPv6Any)) s.DualMode = true;
                s.Bind(new IPEndPoint(address, port));
                s.Listen(128);
            }
            catch { s.Dispose(); throw; }
            return s;
        });
        return new TcpServer(listener);
    }

    private void AcceptLoop()
    {
        while (!_stopping)
        {
            Socket client;
            try { client = _listener.Accept(); }
            catch (SocketException) { if (_stopping) return; continue; }
            catch (ObjectDisposedException) { return; }
            Interlocked.Increment(ref _accepted);
            try
            {
                client.SendTimeout = 1000;
                client.Send(Greeting);
                client.Shutdown(SocketShutdown.Both);
            }
            catch (SocketException) { }
            finally { client.Dispose(); }
        }
    }

    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        try { _listener.Shutdown(SocketShutdown.Both); } catch (SocketException) { }
        _listener.Dispose();
        _loop.Join(TimeSpan.FromSeconds(5));
    }
}
