# frozen_string_literal: true

require "socket"

module TaskerCore
  module Testing
    # A small HTTP/1.1 server on 127.0.0.1 (a free port) for API handler specs: each path answers from a queue of
    # [status, headers, body] (the last answer repeats), and every request is recorded.
    class HttpStub
      Request = Struct.new(:method, :path, :headers, :body, keyword_init: true)

      attr_reader :requests, :port

      def initialize(routes)
        @routes = routes.transform_values { |answers| answers.first.is_a?(Array) ? answers.dup : [answers] }
        @requests = Queue.new
        @server = TCPServer.new("127.0.0.1", 0)
        @port = @server.addr[1]
        @thread = Thread.new { loop { serve(@server.accept) } }
      end

      def url = "http://127.0.0.1:#{@port}"

      def recorded
        list = []
        list << @requests.pop until @requests.empty?
        list
      end

      def stop
        @thread.kill
        @server.close
      end

      private

      def serve(client)
        request_line = client.gets or return client.close
        verb, target, = request_line.split
        headers = {}
        while (line = client.gets) && line != "\r\n"
          key, value = line.split(":", 2)
          headers[key.strip.downcase] = value.strip
        end
        body = headers["content-length"] ? client.read(headers["content-length"].to_i) : nil
        path = target.split("?").first
        @requests << Request.new(method: verb, path: target, headers: headers, body: body)
        answers = @routes[path] || [[404, {}, '{"error":"no route"}']]
        status, extra, text = answers.size > 1 ? answers.shift : answers.first
        client.write("HTTP/1.1 #{status} X\r\nContent-Type: application/json\r\nContent-Length: #{text.bytesize}\r\n" \
                     "Connection: close\r\n#{extra.map { |k, v| "#{k}: #{v}\r\n" }.join}\r\n#{text}")
        client.close
      rescue IOError, SystemCallError
        nil
      end
    end
  end
end
