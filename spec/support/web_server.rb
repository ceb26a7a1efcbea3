# frozen_string_literal: true

require "json"
require "net/http"
require "puma"
require "puma/server"

module SpecSupport
  # A TaskerCore::Web served by Puma on a loopback port for the length of a block, and a real HTTP
  # client for it.
  module WebServer
    def serve_web(app = TaskerCore::Web.new)
      server = Puma::Server.new(app, nil, min_threads: 1, max_threads: 4, log_writer: Puma::LogWriter.null)
      server.add_tcp_listener("127.0.0.1", 0)
      server.run
      @web_port = server.connected_ports.first
      yield @web_port
    ensure
      server&.stop(true)
    end

    # method, path, optional JSON body (a String is sent as it is), headers; returns
    # [status Integer, parsed JSON (or the text), response].
    def http(method, path, body = nil, headers = {})
      Net::HTTP.start("127.0.0.1", @web_port, read_timeout: 30) do |h|
        req = Net::HTTPGenericRequest.new(method, !body.nil?, method != "HEAD", path, headers)
        unless body.nil?
          req.body = body.is_a?(String) ? body : JSON.generate(body)
          req["content-type"] ||= "application/json"
        end
        res = h.request(req)
        parsed = res.body && res["content-type"].to_s.start_with?("application/json") ? JSON.parse(res.body) : res.body
        [res.code.to_i, parsed, res]
      end
    end
  end
end
