# frozen_string_literal: true

require_relative "../generator_helpers"

module TaskerCore
  module Generators
    # rails generate tasker:subscriber notification --events task.completed task.failed step.failed
    #
    # Creates app/subscribers/notification_subscriber.rb (a
    # TaskerCore::Events::Subscribers::BaseSubscriber with one handle_x_y method per event) and its
    # spec.
    class SubscriberGenerator < ::Rails::Generators::NamedBase
      include Helpers

      namespace "tasker:subscriber"
      source_root File.expand_path("templates", __dir__)
      desc "Creates an event subscriber and its spec"
      class_option :events, type: :array, default: ["task.completed"], desc: "the events to subscribe to"

      def check_events
        bad = events.reject { |e| e.match?(/\A[a-z_]+\.[a-z_]+\z/) }
        raise Thor::Error, "event names look like task.completed (got #{bad.join(', ')})" unless bad.empty?
      end

      def create_subscriber
        template "subscriber.rb.tt", "app/subscribers/#{subscriber_file}.rb"
      end

      def create_spec
        tasker_helper
        template "subscriber_spec.rb.tt", "spec/subscribers/#{subscriber_file}_spec.rb"
      end

      private

      def events = options[:events]
      def subscriber_file = "#{file_name.delete_suffix('_subscriber')}_subscriber"
      def subscriber_class = subscriber_file.camelize
      def method_for(event) = "handle_#{event.tr('.', '_')}"
    end
  end
end
