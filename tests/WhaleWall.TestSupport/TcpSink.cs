using System.Net;
using System.Net.Sockets;

namespace WhaleWall.TestSupport;

/// <summary>A TCP server inside a network namespace that keeps every connection open and counts
/// the bytes it receives: shows whether the next packets of an established flow get through.</summary>
public sealed class TcpSink : IDisposable
{
    private readonly Socket _listener;
    private readonly List<Socket> _clients = new();
    private long _received;
    private volatile bool _stopping;

    public long Received => Interlocked.Read(ref _received);

    private TcpSink(Socket listener)
    {
        _listener = listener;
        new Thread(AcceptLoop) { IsBackground = true, Name = $"TcpSink {listener.LocalEndPoint}" }.Start();
    }

    public static TcpSink Start(string nsPath, string ip, int port)
    {
        var address = IPAddress.Parse(ip);
        var listener = Netns.Run(nsPath, () =>
        {
            var s = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                s.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                s.Bind(new IPEndPoint(address, port));
                s.Listen(16);
            }
            catch { s.Dispose(); throw; }
            return s;
        });
        return new TcpSink(listener);
    }

    /// <summary>Waits until at least <paramref name="bytes"/> arrived in total; false on timeout.</summary>
    public bool WaitFor(long bytes, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (Received < bytes)
        {
            if (DateTime.UtcNow > deadline) return false;
            Thread.Sleep(10);
        }
        return true;
    }

    /// <summary>An open client connection from inside <paramref name="nsPath"/>.</summary>
    public static Socket Connect(string nsPath, string ip, int port, string? sourceIp = null)
    {
        var target = new IPEndPoint(IPAddress.Parse(ip), port);
        var socket = Netns.Run(nsPath, () =>
        {
            var s = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            if (sourceIp is not null) s.Bind(new IPEndPoint(IPAddress.Parse(sourceIp), 0));
            return s;
        });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        socket.ConnectAsync(target, cts.Token).AsTask().GetAwaiter().GetResult();
        socket.NoDelay = true;
        return socket;
    }

    private void AcceptLoop()
    {
        while (!_stopping)
        {
            Socket client;
            try { client = _listener.Accept(); }
            catch (SocketException) { if (_stopping) return; continue; }
            catch (ObjectDisposedException) { return; }
            lock (_clients) _clients.Add(client);
            new Thread(() => ReadLoop(client)) { IsBackground = true }.Start();
        }
    }

    private void ReadLoop(Socket client)
    {
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                var n = client.Receive(buffer);
                if (n <= 0) return;
                Interlocked.Add(ref _received, n);
            }
        }
        catch (SocketException) { }
        catch (ObjectDisposedException) { }
    }

    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        try { _listener.Shutdown(SocketShutdown.Both); } catch (SocketException) { }
        _listener.Dispose();
        lock (_clients) foreach (var c in _clients) c.Dispose();
    }
}
