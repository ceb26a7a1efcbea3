# frozen_string_literal: true

require "json"
require "securerandom"
require "time"
require "uri"

module TaskerCore
  # A Rack app serving the worker web server's GET routes from the FFI, for apps that want the
  # worker's health and metrics on their own port instead of a second one:
  #
  #   # config/routes.rb
  #   mount TaskerCore::Web.new => "/tasker"     # GET /tasker/health/ready, /tasker/metrics, ...
  #
  # Bodies are the same text the C server sends (the same services answer). Needs no rack gem: it
  # is a plain object with call(env). The cache mutations stay FFI-only here.
  class Web
    JSON_TYPE = "application/json"
    PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
    SEGMENT = "([^/]+)"

    ROUTES = [
      [%r{\A/health\z}, ->(_m, _q) { FFI.health_basic }],
      [%r{\A/health/ready\z}, ->(_m, _q) { FFI.health_ready }],
      [%r{\A/health/live\z}, ->(_m, _q) { FFI.health_live }],
      [%r{\A/health/detailed\z}, ->(_m, _q) { FFI.health_detailed }],
      [%r{\A/metrics\z}, ->(_m, _q) { FFI.metrics_prometheus }, PROMETHEUS_TYPE],
      [%r{\A/metrics/worker\z}, ->(_m, _q) { FFI.metrics_worker }],
      [%r{\A/metrics/events\z}, ->(_m, _q) { FFI.metrics_events }],
      [%r{\A/config\z}, ->(_m, _q) { FFI.config_runtime }],
      [%r{\A/templates\z}, lambda { |_m, q|
        ns = q["namespace"].to_s
        FFI.templates_list(%w[true 1].include?(q["include_cache_stats"]), ns.empty? ? nil : ns)
      }],
      [%r{\A/templates/cache/stats\z}, ->(_m, _q) { FFI.templates_cache_stats }],
      [%r{\A/templates/#{SEGMENT}/#{SEGMENT}/#{SEGMENT}\z}, ->(m, _q) { FFI.template_get(*m.captures) }],
      [%r{\A/templates/#{SEGMENT}/#{SEGMENT}/#{SEGMENT}/validate\z}, ->(m, _q) { FFI.template_validate(*m.captures) }]
    ].freeze

    def self.call(env) = new.call(env)

    def call(env)
      path = env["PATH_INFO"].to_s.sub(%r{(?<=.)/+\z}, "")
      match = nil
      route = ROUTES.find { |r| match = r[0].match(path) }
      return error(404, "not_found", "no route for #{path}") unless route
      unless %w[GET HEAD].include?(env["REQUEST_METHOD"])
        return error(405, "method_not_allowed", "#{env['REQUEST_METHOD']} is not allowed on #{path}",
                     "allow" => "GET, HEAD")
      end

      query = URI.decode_www_form(env["QUERY_STRING"].to_s).to_h
      body = route[1].call(match, query)
      status = route[0].source.include?("ready") && !body.include?('"status":"ready"') ? 503 : 200
      [status, { "content-type" => route[2] || JSON_TYPE, "cache-control" => "no-store" }, [body]]
    rescue Errors::NotFoundError => e
      error(404, "not_found", e.message)
    rescue Errors::ValidationError => e
      error(400, "bad_request", e.message)
    rescue Errors::WorkerStoppedError, Errors::DatabaseError => e
      error(503, "service_unavailable", e.message)
    end

    private

    def error(status, error, message, headers = {})
      body = JSON.generate(error: error, message: message, timestamp: Time.now.utc.iso8601,
                           request_id: SecureRandom.uuid)
      [status, { "content-type" => JSON_TYPE }.merge(headers), [body]]
    end
  end
end
